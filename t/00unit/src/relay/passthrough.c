/* poe-gateway: MIT licence. Unit tests for src/relay/passthrough.c: what goes to Poe, and how each kind of answer comes back
 * (a stream relayed event by event but only as far as it is a real answer, a whole answer held and checked, an error
 * relayed or mapped). The requests run on the fixture's worker against its scripted upstream. */
#include <string.h>
#include "../../../../src/relay/passthrough.c"
#include "../../fixture.h"
#include "../../test.h"

#define SSE_HEAD(extra) "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" extra "connection: close\r\n\r\n"
#define JSON_HEAD(status, extra) "HTTP/1.1 " status "\r\ncontent-type: application/json\r\n" extra "connection: close\r\n\r\n"
#define EV_START                                                                                                                   \
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"         \
    "\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
#define EV_DELTA                                                                                                                   \
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","          \
    "\"text\":\"hi\"}}\n\n"
#define EV_PING "event: ping\ndata: {\"type\": \"ping\"}\n\n"
#define EV_MDELTA                                                                                                                  \
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":"                  \
    "{\"output_tokens\":7}}\n\n"
#define EV_STOP "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
#define EV_OVERLOADED                                                                                                              \
    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
#define ASK(stream)                                                                                                                \
    "{\"model\":\"claude-x\",\"max_tokens\":8,\"stream\":" stream ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define WHOLE_ANSWER                                                                                                               \
    "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"}],"             \
    "\"usage\":{\"input_tokens\":5,\"output_tokens\":3}}"

/* Starts a pass-through of `body` on route `route_name`, as the messages handler does once it has routed it. */
static test_req_t *start(const char *route_name, const char *body, pgw_request_t **rp)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", body);
    test_req_header(t, "x-api-key", FIXTURE_MASTER_KEY);
    pgw_request_t *r = test_req_begin(t);
    pgw_reqbody_t info;
    char err[256];
    if (pgw_reqbody_inspect(t->req.entity.base, t->req.entity.len, &info, err, sizeof(err)) != 0) {
        note("%s", err);
        abort();
    }
    pgw_passthrough_start(r, fixture_route(route_name), h2o_iovec_init(info.model, info.model_len), &info, "/v1/messages");
    if (rp != NULL)
        *rp = r;
    return t;
}

/* The error a whole response carries: its type and message copied out (empty when the body is not one). */
static void error_of(test_req_t *t, char *type, size_t typesz, char *message, size_t msgsz)
{
    const char *body = test_req_body(t);
    yajl_val root = yajl_tree_parse(body, NULL, 0);
    static const char *type_path[] = {"error", "type", NULL}, *msg_path[] = {"error", "message", NULL};
    const char *ty = YAJL_GET_STRING(yajl_tree_get(root, type_path, yajl_t_string)),
               *m = YAJL_GET_STRING(yajl_tree_get(root, msg_path, yajl_t_string));
    snprintf(type, typesz, "%s", ty != NULL ? ty : "");
    snprintf(message, msgsz, "%s", m != NULL ? m : "");
    yajl_tree_free(root);
}

/* The type of the one `error` event a stream ended with, or "" when its last event is something else. */
static const char *last_error_event(test_req_t *t, char *type, size_t typesz)
{
    const char *body = test_req_body(t), *at = strstr(body, "event: error\ndata: ");
    type[0] = '\0';
    if (at == NULL || strstr(at + 1, "event: ") != NULL)
        return type;
    const char *data = at + strlen("event: error\ndata: "), *end = strstr(data, "\n\n");
    if (end == NULL || end[2] != '\0')
        return type;
    char *json = strndup(data, (size_t)(end - data));
    yajl_val root = yajl_tree_parse(json, NULL, 0);
    static const char *type_path[] = {"error", "type", NULL};
    const char *ty = YAJL_GET_STRING(yajl_tree_get(root, type_path, yajl_t_string));
    snprintf(type, typesz, "%s", ty != NULL ? ty : "");
    yajl_tree_free(root);
    free(json);
    return type;
}

static void test_upstream_request(void)
{
    static const upstream_answer_t answer = {{JSON_HEAD("200 OK", "") WHOLE_ANSWER}};

    /* a renamed route: the model's value is replaced in place, every other byte goes as the client sent it */
    static const char body[] = "{\"model\" : \"claude-renamed\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"say \\\"claude-renamed\\\"\"}],\"metadata\":{\"model\":\"claude-renamed\"}}";
    upstream_expect(&answer);
    test_req_t *t = test_req_create("POST", "/v1/messages?beta=true", body);
    test_req_header(t, "x-api-key", FIXTURE_MASTER_KEY);
    test_req_header(t, "authorization", "Bearer " FIXTURE_MASTER_KEY);
    test_req_header(t, "anthropic-version", "2023-01-01");
    test_req_header(t, "anthropic-beta", "beta-one");
    test_req_header(t, "anthropic-beta", "beta-two");
    test_req_header(t, "cookie", "session=1");
    pgw_request_t *r = test_req_begin(t);
    pgw_reqbody_t info;
    char err[256];
    ok(pgw_reqbody_inspect(t->req.entity.base, t->req.entity.len, &info, err, sizeof(err)) == 0);
    size_t before = upstream_requests();
    pgw_passthrough_start(r, fixture_route("claude-renamed"), h2o_iovec_init(info.model, info.model_len), &info, "/v1/messages");
    RUN_UNTIL(t->ended);
    is_int(upstream_requests(), before + 1);
    ok(strncmp(upstream_last_request(), "POST /v1/messages HTTP/1.1\r\n", 28) == 0);
    is_str(upstream_last_body(),
           "{\"model\" : \"claude-upstream-name\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":"
           "\"say \\\"claude-renamed\\\"\"}],\"metadata\":{\"model\":\"claude-renamed\"}}");
    /* Poe's key replaces the client's, which goes nowhere; the anthropic-* headers go through; nothing else does */
    is_str(upstream_last_header("x-api-key"), FIXTURE_UPSTREAM_KEY);
    ok(strstr(upstream_last_request(), FIXTURE_MASTER_KEY) == NULL);
    is_str(upstream_last_header("authorization"), NULL);
    is_str(upstream_last_header("cookie"), NULL);
    is_str(upstream_last_header("anthropic-version"), "2023-01-01");
    ok(strstr(upstream_last_request(), "\r\nanthropic-beta: beta-one\r\n") != NULL);
    ok(strstr(upstream_last_request(), "\r\nanthropic-beta: beta-two\r\n") != NULL);
    is_int(t->req.res.status, 200);
    test_req_destroy(t);

    /* the client's own name for a wildcard route: the body goes byte for byte; a missing version gets the current one */
    upstream_expect(&answer);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_str(upstream_last_body(), ASK("false"));
    is_str(upstream_last_header("anthropic-version"), "2023-06-01");
    test_req_destroy(t);
}

static void test_stream_complete(void)
{
    /* a ping before the stream has started keeps nothing alive and is dropped; once it has, pings are relayed too */
    static const upstream_answer_t answer = {
        {SSE_HEAD("request-id: req_abc\r\nanthropic-ratelimit-requests-remaining: 41\r\nx-poe-internal: 1\r\n"), EV_PING, EV_START,
         UPSTREAM_WAIT, EV_PING, EV_DELTA, EV_MDELTA, EV_STOP}};
    pgw_request_t *r;
    upstream_expect(&answer);
    test_req_t *t = start("claude-*", ASK("true"), &r);
    RUN_UNTIL(strstr(test_req_body(t), EV_START) != NULL);
    upstream_continue();
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "text/event-stream");
    is_str(test_req_res_header(t, "request-id"), "req_abc");
    is_str(test_req_res_header(t, "anthropic-ratelimit-requests-remaining"), "41");
    is_str(test_req_res_header(t, "x-poe-internal"), NULL);
    is_str(test_req_body(t), EV_START EV_PING EV_DELTA EV_MDELTA EV_STOP); /* byte for byte */
    is_int(r->usage.input_tokens, 12);
    is_int(r->usage.output_tokens, 7);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_stream_ends_early(void)
{
    char type[64];
    pgw_request_t *r;

    /* the transfer ends cleanly but before message_stop: one error event of the gateway's */
    static const upstream_answer_t no_stop = {{SSE_HEAD(""), EV_START, EV_DELTA}};
    upstream_expect(&no_stop);
    test_req_t *t = start("claude-*", ASK("true"), &r);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    ok(strncmp(test_req_body(t), EV_START EV_DELTA "event: error\n", strlen(EV_START EV_DELTA "event: error\n")) == 0);
    is_str(last_error_event(t, type, sizeof(type)), "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* the transfer breaks off (a length it never reaches) */
    static const upstream_answer_t broken = {{SSE_HEAD("content-length: 100000\r\n"), EV_START, EV_DELTA}};
    upstream_expect(&broken);
    t = start("claude-*", ASK("true"), &r);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    ok(strncmp(test_req_body(t), EV_START EV_DELTA "event: error\n", strlen(EV_START EV_DELTA "event: error\n")) == 0);
    is_str(last_error_event(t, type, sizeof(type)), "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* an event cut in the middle is not relayed: the client never sees half an event */
    static const upstream_answer_t half = {{SSE_HEAD(""), EV_START, "event: content_block_delta\ndata: {\"type\":"}};
    upstream_expect(&half);
    t = start("claude-*", ASK("true"), &r);
    RUN_UNTIL(t->ended);
    ok(strncmp(test_req_body(t), EV_START "event: error\n", strlen(EV_START "event: error\n")) == 0);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_poe_error_event(void)
{
    /* an error before anything started becomes the response: its status from its type, its data as the body */
    static const upstream_answer_t first = {{SSE_HEAD(""), EV_OVERLOADED}};
    upstream_expect(&first);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 529);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    is_str(test_req_body(t), "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* one that is not Anthropic-shaped: 502, its body as Poe sent it */
    static const upstream_answer_t odd = {{SSE_HEAD(""), "event: error\ndata: {\"error\":\"boom\"}\n\n"}};
    upstream_expect(&odd);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_str(test_req_body(t), "{\"error\":\"boom\"}");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* in a stream: relayed as Poe sent it, and the last thing the client gets */
    static const upstream_answer_t mid = {{SSE_HEAD(""), EV_START EV_DELTA EV_OVERLOADED EV_DELTA EV_STOP}};
    upstream_expect(&mid);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), EV_START EV_DELTA EV_OVERLOADED);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* message_start and the error in one read: the stream starts, then ends with the error */
    static const upstream_answer_t same_read = {{SSE_HEAD(""), EV_START EV_OVERLOADED}};
    upstream_expect(&same_read);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), EV_START EV_OVERLOADED);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);
}

static void test_unusable_stream(void)
{
    char type[64], message[512];

    /* content before message_start: nothing was started, so an error status */
    static const upstream_answer_t early = {{SSE_HEAD(""), EV_DELTA EV_STOP}};
    upstream_expect(&early);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "api_error");
    ok(strstr(message, "message_start") != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* an event whose data a client's SDK could not parse: not relayed; the stream ends with the gateway's error */
    static const upstream_answer_t bad = {{SSE_HEAD(""), EV_START, UPSTREAM_WAIT,
                                           "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\n\n" EV_STOP}};
    upstream_expect(&bad);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(strstr(test_req_body(t), EV_START) != NULL); /* started: the error comes as an event */
    upstream_continue();
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    ok(strncmp(test_req_body(t), EV_START "event: error\n", strlen(EV_START "event: error\n")) == 0);
    ok(strstr(test_req_body(t), "content_block_delta") == NULL);
    ok(strstr(test_req_body(t), "message_stop") == NULL);
    is_str(last_error_event(t, type, sizeof(type)), "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* a client that asked for a stream and got a whole body, and the other way round */
    static const upstream_answer_t whole = {{JSON_HEAD("200 OK", "") WHOLE_ANSWER}};
    upstream_expect(&whole);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
    static const upstream_answer_t stream = {{SSE_HEAD(""), EV_START EV_STOP}};
    upstream_expect(&stream);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_key_redacted(void)
{
    /* an upstream that quotes the key it was given does not hand it to the client, in a stream or a whole answer */
    static const upstream_answer_t stream = {
        {SSE_HEAD(""), EV_START,
         "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
         "\"text\":\"your key is " FIXTURE_UPSTREAM_KEY "\"}}\n\n",
         EV_STOP}};
    upstream_expect(&stream);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    ok(strstr(test_req_body(t), FIXTURE_UPSTREAM_KEY) == NULL);
    ok(strstr(test_req_body(t), "your key is [redacted]") != NULL);
    ok(strstr(test_req_body(t), EV_STOP) != NULL);
    test_req_destroy(t);

    static const upstream_answer_t whole = {
        {JSON_HEAD("200 OK", ""),
         "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"" FIXTURE_UPSTREAM_KEY "\"}]}"}};
    upstream_expect(&whole);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"[redacted]\"}]}");
    is_int(t->req.res.content_length, strlen(test_req_body(t)));
    test_req_destroy(t);
}

static void test_whole_answer(void)
{
    char type[64], message[512];
    pgw_request_t *r;

    static const upstream_answer_t answer = {{JSON_HEAD("200 OK", "request-id: req_w\r\n"), WHOLE_ANSWER}};
    upstream_expect(&answer);
    test_req_t *t = start("claude-*", ASK("false"), &r);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    is_str(test_req_res_header(t, "request-id"), "req_w");
    is_str(test_req_body(t), WHOLE_ANSWER);
    is_int(t->req.res.content_length, strlen(WHOLE_ANSWER));
    is_int(r->usage.input_tokens, 5);
    is_int(r->usage.output_tokens, 3);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);

    /* cut short, it is a 502: never a 200 with truncated JSON */
    static const upstream_answer_t cut = {{JSON_HEAD("200 OK", "content-length: 500\r\n"), "{\"id\":\"msg_1\",\"content\":["}};
    upstream_expect(&cut);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "api_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* complete as far as HTTP goes, but not one JSON object; or empty */
    static const upstream_answer_t not_json = {{JSON_HEAD("200 OK", ""), "{\"id\":\"msg_1\",\"content\":["}};
    upstream_expect(&not_json);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
    static const upstream_answer_t empty = {{JSON_HEAD("200 OK", "content-length: 0\r\n")}};
    upstream_expect(&empty);
    t = start("claude-*", ASK("false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_error_status(void)
{
    char type[64], message[512];

    /* Anthropic-shaped: byte for byte, with Poe's status */
    static const char shaped[] =
        "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"max_tokens: too big\"}}";
    static const upstream_answer_t a400 = {{JSON_HEAD("400 Bad Request", ""), shaped}};
    upstream_expect(&a400);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 400);
    is_str(test_req_body(t), shaped);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* anything else is mapped to an Anthropic error */
    static const upstream_answer_t a503 = {
        {"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n<html>busy</html>"}};
    upstream_expect(&a503);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 529);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "overloaded_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* Poe refusing the gateway's key is not the client's credential failing: not a 401, and the message names the fix */
    static const upstream_answer_t a401 = {{JSON_HEAD("401 Unauthorized", ""), "{\"error\":{\"message\":\"bad key\"}}"}};
    upstream_expect(&a401);
    char log[1024];
    stderr_capture_begin();
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "route claude-*") != NULL && strstr(log, FIXTURE_UPSTREAM_KEY) == NULL); /* logged, without the key */
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "api_error");
    ok(strstr(message, FIXTURE_UPSTREAM_KEY_ENV) != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* a 429 keeps Poe's Retry-After, or gets one */
    static const upstream_answer_t a429 = {{JSON_HEAD("429 Too Many Requests", "retry-after: 7\r\n"),
                                            "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                                            "\"message\":\"slow down\"}}"}};
    upstream_expect(&a429);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 429);
    is_str(test_req_res_header(t, "retry-after"), "7");
    test_req_destroy(t);
    static const upstream_answer_t a429bare = {{JSON_HEAD("429 Too Many Requests", ""), "{\"error\":\"slow down\"}"}};
    upstream_expect(&a429bare);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 429);
    is_str(test_req_res_header(t, "retry-after"), "1");
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "rate_limit_error");
    test_req_destroy(t);

    /* a redirect is a misconfigured api_base */
    static const upstream_answer_t a302 = {
        {"HTTP/1.1 302 Found\r\nlocation: https://poe.com/login\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"}};
    upstream_expect(&a302);
    t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    ok(strstr(message, "https://poe.com/login") != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);
}

static void test_unreachable(void)
{
    char type[64], message[512];
    test_req_t *t = start("claude-dead", ASK("true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    error_of(t, type, sizeof(type), message, sizeof(message));
    is_str(type, "api_error");
    ok(strstr(message, "claude-dead") != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_client_gone(void)
{
    /* the client goes away in the middle of a stream: Poe's stream is reset at once */
    static const upstream_answer_t answer = {{SSE_HEAD(""), EV_START, UPSTREAM_WAIT, EV_STOP}};
    size_t hangups = upstream_hangups();
    upstream_expect(&answer);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    RUN_UNTIL(strstr(test_req_body(t), EV_START) != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_CLIENT_GONE);
    RUN_UNTIL(upstream_hangups() == hangups + 1);
    is_int(upstream_hangups(), hangups + 1);
    upstream_continue(); /* nothing: the connection is gone */
}

static void test_flow_control(void)
{
    /* a client slower than Poe: past the high-water mark the transfer pauses, and resumes as the client reads; every
     * byte arrives, in order */
    static char big[64][64 * 1024];
    static upstream_answer_t answer = {{SSE_HEAD(""), EV_START}};
    size_t n = 2;
    for (size_t i = 0; i != 20; ++i) {
        int len = snprintf(big[i], sizeof(big[i]),
                           "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"i\":%zu,"
                           "\"pad\":\"",
                           i);
        memset(big[i] + len, 'x' + (i % 3), sizeof(big[i]) - len - 8);
        strcpy(big[i] + sizeof(big[i]) - 8, "\"}\n\n");
        answer.parts[n++] = big[i];
    }
    answer.parts[n++] = EV_STOP;
    upstream_expect(&answer);
    test_req_t *t = start("claude-*", ASK("true"), NULL);
    t->auto_proceed = 0;
    /* the client reads nothing until Poe is paused */
    RUN_UNTIL(t->in_flight && ((pgw_relay_t *)t->req._generator)->paused);
    ok(t->in_flight && ((pgw_relay_t *)t->req._generator)->paused);
    /* then it reads each send as it comes */
    while (!t->ended) {
        RUN_UNTIL(t->in_flight || t->ended);
        if (!t->in_flight)
            break;
        test_req_proceed(t);
    }
    is_int(t->end, H2O_SEND_STATE_FINAL);
    const char *body = test_req_body(t);
    size_t expect = strlen(EV_START) + strlen(EV_STOP);
    for (size_t i = 0; i != 20; ++i)
        expect += strlen(big[i]);
    is_int(strlen(body), expect);
    ok(strncmp(body, EV_START, strlen(EV_START)) == 0);
    ok(strstr(body, "\"i\":19,") != NULL && strstr(body, "\"i\":18,") < strstr(body, "\"i\":19,"));
    ok(strcmp(body + strlen(body) - strlen(EV_STOP), EV_STOP) == 0);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

void test_src__passthrough_c(void)
{
    subtest("the request to Poe", test_upstream_request);
    subtest("a stream that completes", test_stream_complete);
    subtest("a stream that ends early", test_stream_ends_early);
    subtest("Poe's error event", test_poe_error_event);
    subtest("an unusable stream", test_unusable_stream);
    subtest("the key is redacted", test_key_redacted);
    subtest("a whole answer", test_whole_answer);
    subtest("an error status", test_error_status);
    subtest("Poe unreachable", test_unreachable);
    subtest("the client goes away", test_client_gone);
    subtest("flow control", test_flow_control);
}
