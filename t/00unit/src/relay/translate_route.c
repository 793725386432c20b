/* poe-gateway: MIT licence. Unit tests for src/relay/translate_route.c: an Anthropic request translated to Poe's
 * chat/completions and the answer translated back; the decisions the route makes around the translators (nothing sent
 * for a body that does not translate, the commit, the grace wait for usage, errors before a 2xx, an answer that never
 * became one). The requests run on the fixture's worker against its scripted upstream. */
#include <string.h>
#include <yajl/yajl_tree.h>
#include "../../../../src/relay/translate_route.c"
#include "../../fixture.h"
#include "../../test.h"

#define SSE_HEAD(extra) "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" extra "connection: close\r\n\r\n"
#define JSON_HEAD(status, extra) "HTTP/1.1 " status "\r\ncontent-type: application/json\r\n" extra "connection: close\r\n\r\n"
#define CHUNK(json) "data: " json "\n\n"
#define TEXT(s)                                                                                                                    \
    CHUNK("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" s "\"}}]}")
#define FINISH                                                                                                                     \
    CHUNK("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}" \
          "]}")
#define USAGE                                                                                                                      \
    CHUNK("{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_"       \
          "tokens\":3}}")
#define DONE "data: [DONE]\n\n"
#define ASK(stream)                                                                                                                \
    "{\"model\":\"gpt-5\",\"max_tokens\":8,\"stream\":" stream ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* Starts `body` on the gpt-5 route as the messages handler does once it has routed it (count_tokens with `count`). */
static test_req_t *start(const char *body, int count, pgw_request_t **rp)
{
    test_req_t *t = test_req_create("POST", count ? "/v1/messages/count_tokens" : "/v1/messages", body);
    test_req_header(t, "x-api-key", FIXTURE_MASTER_KEY);
    pgw_request_t *r = test_req_begin(t);
    pgw_reqbody_t info;
    char err[256];
    if (pgw_reqbody_inspect(t->req.entity.base, t->req.entity.len, &info, err, sizeof(err)) != 0) {
        note("%s", err);
        abort();
    }
    if (count)
        pgw_translate_route_count_tokens(r, fixture_route("gpt-5"), h2o_iovec_init(info.model, info.model_len), &info);
    else
        pgw_translate_route_messages(r, fixture_route("gpt-5"), h2o_iovec_init(info.model, info.model_len), &info);
    if (rp != NULL)
        *rp = r;
    return t;
}

/* A string at `path` of the JSON `text`, copied out ("" when absent). */
static const char *json_string(const char *text, const char **path, char *buf, size_t bufsz)
{
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    const char *s = YAJL_GET_STRING(yajl_tree_get(root, path, yajl_t_string));
    snprintf(buf, bufsz, "%s", s != NULL ? s : "");
    yajl_tree_free(root);
    return buf;
}

static const char *error_type(test_req_t *t, char *buf, size_t bufsz)
{
    static const char *path[] = {"error", "type", NULL};
    return json_string(test_req_body(t), path, buf, bufsz);
}

static const char *error_message(test_req_t *t, char *buf, size_t bufsz)
{
    static const char *path[] = {"error", "message", NULL};
    return json_string(test_req_body(t), path, buf, bufsz);
}

/* The names of the events of an SSE body, space-separated. */
static const char *event_names(const char *body, char *buf, size_t bufsz)
{
    size_t n = 0;
    buf[0] = '\0';
    for (const char *p = body; (p = strstr(p, "event: ")) != NULL && n < bufsz;) {
        p += 7;
        size_t len = strcspn(p, "\n");
        n += snprintf(buf + n, bufsz - n, "%s%.*s", n != 0 ? " " : "", (int)len, p);
        p += len;
    }
    return buf;
}

static void test_upstream_request(void)
{
    static const upstream_answer_t answer = {{SSE_HEAD(""), TEXT("hi") FINISH USAGE DONE}};
    upstream_expect(&answer);
    size_t before = upstream_requests();
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(upstream_requests(), before + 1);
    ok(strncmp(upstream_last_request(), "POST /v1/chat/completions HTTP/1.1\r\n", 36) == 0);
    is_str(upstream_last_header("authorization"), "Bearer " FIXTURE_UPSTREAM_KEY);
    is_str(upstream_last_header("x-api-key"), NULL);
    ok(strstr(upstream_last_request(), FIXTURE_MASTER_KEY) == NULL);
    char model[64];
    static const char *model_path[] = {"model", NULL};
    is_str(json_string(upstream_last_body(), model_path, model, sizeof(model)), "GPT-5"); /* the route's bot (no catalog) */
    ok(strstr(upstream_last_body(), "\"stream\":true") != NULL);
    test_req_destroy(t);
}

static void test_stream(void)
{
    char names[512];
    pgw_request_t *r;
    static const upstream_answer_t answer = {{SSE_HEAD("x-request-id: poe-42\r\n"), TEXT("Hel"), TEXT("lo"), FINISH, USAGE, DONE}};
    upstream_expect(&answer);
    test_req_t *t = start(ASK("true"), 0, &r);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "text/event-stream");
    is_str(test_req_res_header(t, "request-id"), "poe-42");
    const char *body = test_req_body(t);
    is_str(event_names(body, names, sizeof(names)),
           "message_start content_block_start content_block_delta content_block_delta content_block_stop message_delta "
           "message_stop");
    ok(strstr(body, "\"model\":\"gpt-5\"") != NULL); /* the client's name for the model */
    ok(strstr(body, "\"text\":\"Hel\"") != NULL && strstr(body, "\"text\":\"lo\"") != NULL);
    is_int(r->usage.input_tokens, 12);
    is_int(r->usage.output_tokens, 3);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_key_redacted(void)
{
    /* whatever Poe echoes, its key does not reach the client */
    static const upstream_answer_t answer = {{SSE_HEAD(""), TEXT("the key is " FIXTURE_UPSTREAM_KEY), FINISH USAGE DONE}};
    upstream_expect(&answer);
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    ok(strstr(test_req_body(t), FIXTURE_UPSTREAM_KEY) == NULL);
    ok(strstr(test_req_body(t), "the key is [redacted]") != NULL);
    ok(strstr(test_req_body(t), "event: message_stop") != NULL);
    test_req_destroy(t);
}

static void test_stream_breaks_off(void)
{
    char names[512];

    /* once the stream has started, a break ends it with one error event, after what was translated */
    static const upstream_answer_t broken = {{SSE_HEAD("content-length: 100000\r\n"), TEXT("Hel")}};
    upstream_expect(&broken);
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    const char *names_got = event_names(test_req_body(t), names, sizeof(names));
    ok(strncmp(names_got, "message_start", 13) == 0);
    ok(strlen(names_got) > 6 && strcmp(names_got + strlen(names_got) - 6, " error") == 0);
    ok(strstr(names_got, "message_stop") == NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* a stream that never carried an answer is an error response, not an empty stream */
    char type[64];
    static const upstream_answer_t empty = {{SSE_HEAD(""), ": nothing\n\n"}};
    upstream_expect(&empty);
    t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_str(error_type(t, type, sizeof(type)), "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* a streaming request answered with a whole body */
    static const upstream_answer_t whole = {{JSON_HEAD("200 OK", ""), "{\"choices\":[]}"}};
    upstream_expect(&whole);
    t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_grace(void)
{
    /* finish_reason came, usage has not, and Poe keeps the transfer open: after the grace period (its timer's callback
     * is called here) the answer ends as complete, and the transfer is closed */
    char names[512];
    static const upstream_answer_t answer = {{SSE_HEAD(""), TEXT("Hi") FINISH}, 1};
    size_t hangups = upstream_hangups();
    upstream_expect(&answer);
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(strstr(test_req_body(t), "\"text\":\"Hi\"") != NULL);
    /* no turn of the loop since: the grace timer cannot have fired */
    ok(!t->ended);
    translate_t *st = (translate_t *)t->req._generator; /* the relay is the generator h2o holds */
    ok(st != NULL && pgw_stream_translator_awaiting_usage(st->stream));
    on_grace(&st->relay);
    RUN_UNTIL(t->ended && upstream_hangups() == hangups + 1);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    const char *got = event_names(test_req_body(t), names, sizeof(names));
    ok(strlen(got) > 12 && strcmp(got + strlen(got) - 12, "message_stop") == 0);
    is_int(upstream_hangups(), hangups + 1);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_error_status(void)
{
    char type[64], message[512], log[1024];

    /* mapped to an Anthropic error; Retry-After kept */
    static const upstream_answer_t a429 = {{JSON_HEAD("429 Too Many Requests", "retry-after: 7\r\n"),
                                            "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}"}};
    upstream_expect(&a429);
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 429);
    is_str(error_type(t, type, sizeof(type)), "rate_limit_error");
    is_str(test_req_res_header(t, "retry-after"), "7");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* ... or added to a 429 */
    static const upstream_answer_t a429bare = {{JSON_HEAD("429 Too Many Requests", ""), "{\"error\":\"slow down\"}"}};
    upstream_expect(&a429bare);
    t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_str(test_req_res_header(t, "retry-after"), "1");
    test_req_destroy(t);

    /* Poe refusing the gateway's key: not a 401, and the message names the variable to fix */
    static const upstream_answer_t a401 = {{JSON_HEAD("401 Unauthorized", ""), "{\"error\":{\"message\":\"invalid key\"}}"}};
    upstream_expect(&a401);
    stderr_capture_begin();
    t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    stderr_capture_end(log, sizeof(log));
    is_int(t->req.res.status, 502);
    is_str(error_type(t, type, sizeof(type)), "api_error");
    ok(strstr(error_message(t, message, sizeof(message)), FIXTURE_UPSTREAM_KEY_ENV) != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* an error body quoting the key does not hand it to the client */
    static const upstream_answer_t a400 = {
        {JSON_HEAD("400 Bad Request", ""), "{\"error\":{\"message\":\"key " FIXTURE_UPSTREAM_KEY " may not use GPT-5\"}}"}};
    upstream_expect(&a400);
    t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 400);
    ok(strstr(test_req_body(t), FIXTURE_UPSTREAM_KEY) == NULL);
    ok(strstr(error_message(t, message, sizeof(message)), "[redacted]") != NULL);
    test_req_destroy(t);
}

static void test_whole(void)
{
    char buf[256];
    pgw_request_t *r;
    static const upstream_answer_t answer = {
        {JSON_HEAD("200 OK", "x-request-id: poe-7\r\n"),
         "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
         "\"Hello\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}"}};
    upstream_expect(&answer);
    test_req_t *t = start(ASK("false"), 0, &r);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    is_str(test_req_res_header(t, "request-id"), "poe-7");
    static const char *type_path[] = {"type", NULL}, *model_path[] = {"model", NULL}, *stop_path[] = {"stop_reason", NULL};
    is_str(json_string(test_req_body(t), type_path, buf, sizeof(buf)), "message");
    is_str(json_string(test_req_body(t), model_path, buf, sizeof(buf)), "gpt-5");
    is_str(json_string(test_req_body(t), stop_path, buf, sizeof(buf)), "end_turn");
    ok(strstr(test_req_body(t), "\"text\":\"Hello\"") != NULL);
    is_int(r->usage.input_tokens, 9);
    is_int(r->usage.output_tokens, 2);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);

    /* a whole answer that broke off is an error, never a partial message */
    static const upstream_answer_t cut = {{JSON_HEAD("200 OK", "content-length: 900\r\n"), "{\"id\":\"c1\",\"choices\":["}};
    upstream_expect(&cut);
    t = start(ASK("false"), 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_str(error_type(t, buf, sizeof(buf)), "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_not_sent(void)
{
    char type[64];
    size_t before = upstream_requests();

    /* a body that does not translate is a 400, and nothing goes to Poe */
    test_req_t *t = start("{\"model\":\"gpt-5\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 0, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 400);
    is_str(error_type(t, type, sizeof(type)), "invalid_request_error");
    test_req_destroy(t);

    /* count_tokens is the gateway's own estimate: no upstream call either */
    t = start(ASK("false"), 1, NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    const char *body = test_req_body(t);
    long long n = -1;
    ok(sscanf(body, "{\"input_tokens\":%lld}", &n) == 1 && n > 0);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
    is_int(upstream_requests(), before);
}

static void test_large_body(void)
{
    /* a body past PGW_TRANSLATE_INLINE_MAX is translated on the thread pool, then sent as any other */
    size_t len = PGW_TRANSLATE_INLINE_MAX + 1024;
    char *body = malloc(len + 200), *text = malloc(len + 1);
    memset(text, 'a', len);
    text[len] = '\0';
    snprintf(body, len + 200,
             "{\"model\":\"gpt-5\",\"max_tokens\":8,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", text);
    static const upstream_answer_t answer = {{SSE_HEAD(""), TEXT("ok") FINISH USAGE DONE}};
    upstream_expect(&answer);
    size_t before = upstream_requests();
    test_req_t *t = start(body, 0, NULL);
    ok(!t->ended && upstream_requests() == before); /* nothing yet: the translation is on the pool */
    RUN_UNTIL(t->ended);
    is_int(upstream_requests(), before + 1);
    ok(strstr(upstream_last_body(), text) != NULL);
    is_int(t->req.res.status, 200);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);

    /* the client goes away while the translation runs: the job is cancelled, and nothing goes to Poe */
    t = start(body, 0, NULL);
    test_req_destroy(t);
    RUN_UNTIL(pgw_translate_jobs_in_progress() == 0);
    fixture_settle();
    is_int(upstream_requests(), before + 1);
    free(body);
    free(text);
}

static void test_client_gone(void)
{
    static const upstream_answer_t answer = {{SSE_HEAD(""), TEXT("Hel"), UPSTREAM_WAIT, TEXT("lo") FINISH USAGE DONE}};
    size_t hangups = upstream_hangups();
    upstream_expect(&answer);
    test_req_t *t = start(ASK("true"), 0, NULL);
    RUN_UNTIL(strstr(test_req_body(t), "\"text\":\"Hel\"") != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_CLIENT_GONE);
    RUN_UNTIL(upstream_hangups() == hangups + 1);
    is_int(upstream_hangups(), hangups + 1);
}

void test_src__translate_route_c(void)
{
    subtest("the request to Poe", test_upstream_request);
    subtest("a stream", test_stream);
    subtest("the key is redacted", test_key_redacted);
    subtest("a stream that breaks off or never answers", test_stream_breaks_off);
    subtest("the grace wait for usage", test_grace);
    subtest("an error status", test_error_status);
    subtest("a whole answer", test_whole);
    subtest("nothing sent to Poe", test_not_sent);
    subtest("a large body", test_large_body);
    subtest("the client goes away", test_client_gone);
}
