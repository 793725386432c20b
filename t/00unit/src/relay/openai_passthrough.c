/* poe-gateway: MIT licence. Unit tests for src/relay/openai_passthrough.c: what goes to Poe's chat/completions for an
 * OpenAI client, and how each kind of answer comes back (a stream relayed chunk by chunk as far as it is a real answer, a
 * whole answer held and checked, errors in OpenAI's shape). The requests run on the fixture's worker against its
 * scripted upstream. */
#include <string.h>
#include "../../../../src/relay/openai_passthrough.c"
#include "../../fixture.h"
#include "../../test.h"

#define SSE_HEAD(extra) "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" extra "connection: close\r\n\r\n"
#define JSON_HEAD(status, extra) "HTTP/1.1 " status "\r\ncontent-type: application/json\r\n" extra "connection: close\r\n\r\n"
#define CHUNK(delta, finish)                                                                                                       \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"finish_reason\":" \
    finish "}]}\n\n"
#define CH_ROLE CHUNK("{\"role\":\"assistant\"}", "null")
#define CH_TEXT CHUNK("{\"content\":\"hi\"}", "null")
#define CH_STOP CHUNK("{}", "\"stop\"")
#define CH_USAGE                                                                                                                   \
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,"                     \
    "\"completion_tokens\":4,\"prompt_tokens_details\":{\"cached_tokens\":20}}}\n\n"
#define CH_DONE "data: [DONE]\n\n"
#define ASK(model, stream) "{\"model\":\"" model "\",\"stream\":" stream ",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
#define WHOLE_ANSWER                                                                                                               \
    "{\"id\":\"c1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","                  \
    "\"content\":\"hi\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}"

/* Starts a chat/completions pass-through of `body` on route `route_name`, as the handler does once it has routed it. */
static test_req_t *start(const char *route_name, const char *body, pgw_request_t **rp)
{
    test_req_t *t = test_req_create("POST", "/v1/chat/completions", body);
    test_req_header(t, "authorization", "Bearer " FIXTURE_MASTER_KEY);
    pgw_request_t *r = test_req_begin(t);
    pgw_reqbody_t info;
    char err[256];
    if (pgw_reqbody_inspect(t->req.entity.base, t->req.entity.len, &info, err, sizeof(err)) != 0) {
        note("%s", err);
        abort();
    }
    pgw_openai_passthrough_start(r, fixture_route(route_name), h2o_iovec_init(info.model, info.model_len), &info);
    if (rp != NULL)
        *rp = r;
    return t;
}

/* The `error` object of an OpenAI error body or data event: `json` parsed, the four fields copied out as text. */
static int openai_error_of(const char *json, char *type, size_t typesz, char *code, size_t codesz)
{
    yajl_val root = yajl_tree_parse(json, NULL, 0);
    static const char *type_path[] = {"error", "type", NULL}, *code_path[] = {"error", "code", NULL},
                      *msg_path[] = {"error", "message", NULL}, *param_path[] = {"error", "param", NULL};
    const char *ty = YAJL_GET_STRING(yajl_tree_get(root, type_path, yajl_t_string)),
               *c = YAJL_GET_STRING(yajl_tree_get(root, code_path, yajl_t_string));
    int ok = ty != NULL && c != NULL && yajl_tree_get(root, msg_path, yajl_t_string) != NULL &&
             yajl_tree_get(root, param_path, yajl_t_null) != NULL && root->u.object.len == 1;
    snprintf(type, typesz, "%s", ty != NULL ? ty : "");
    snprintf(code, codesz, "%s", c != NULL ? c : "");
    yajl_tree_free(root);
    return ok;
}

static void test_upstream_request(void)
{
    static const upstream_answer_t answer = {{JSON_HEAD("200 OK", "") WHOLE_ANSWER}};

    /* an openai/ route: its bot's name spliced in, every other byte as the client sent it, Poe's key as the bearer */
    static const char body[] = "{\"messages\": [{\"role\":\"user\",\"content\":\"gpt-5\"}], \"model\" : \"gpt-5\", \"n\":1}";
    upstream_expect(&answer);
    test_req_t *t = test_req_create("POST", "/v1/chat/completions", body);
    test_req_header(t, "authorization", "Bearer " FIXTURE_MASTER_KEY);
    test_req_header(t, "cookie", "session=1");
    pgw_request_t *r = test_req_begin(t);
    pgw_reqbody_t info;
    char err[256];
    ok(pgw_reqbody_inspect(t->req.entity.base, t->req.entity.len, &info, err, sizeof(err)) == 0);
    pgw_openai_passthrough_start(r, fixture_route("gpt-5"), h2o_iovec_init(info.model, info.model_len), &info);
    RUN_UNTIL(t->ended);
    ok(strncmp(upstream_last_request(), "POST /v1/chat/completions HTTP/1.1\r\n", 36) == 0);
    is_str(upstream_last_body(), "{\"messages\": [{\"role\":\"user\",\"content\":\"gpt-5\"}], \"model\" : \"GPT-5\", \"n\":1}");
    is_str(upstream_last_header("authorization"), "Bearer " FIXTURE_UPSTREAM_KEY);
    ok(strstr(upstream_last_request(), FIXTURE_MASTER_KEY) == NULL);
    is_str(upstream_last_header("cookie"), NULL);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), WHOLE_ANSWER); /* byte for byte */
    is_int(r->usage.input_tokens, 9);
    is_int(r->usage.output_tokens, 2);
    test_req_destroy(t);

    /* an anthropic/ route: Poe's chat/completions under Poe's name for the Claude model (a dated id loses its date) */
    upstream_expect(&answer);
    t = start("claude-*", ASK("claude-sonnet-4-5-20250929", "false"), NULL);
    RUN_UNTIL(t->ended);
    ok(strncmp(upstream_last_request(), "POST /v1/chat/completions HTTP/1.1\r\n", 36) == 0);
    is_str(upstream_last_body(), ASK("claude-sonnet-4.5", "false"));
    is_int(t->req.res.status, 200);
    test_req_destroy(t);
}

static void test_stream(void)
{
    pgw_request_t *r;

    /* relayed chunk by chunk, byte for byte; the first goes out before Poe sends the rest; usage from the final chunk */
    static const upstream_answer_t full = {
        {SSE_HEAD("x-request-id: req_1\r\nx-ratelimit-remaining-requests: 9\r\nx-poe-internal: 1\r\n"), CH_ROLE, UPSTREAM_WAIT,
         CH_TEXT, CH_STOP, CH_USAGE, CH_DONE}};
    upstream_expect(&full);
    test_req_t *t = start("gpt-5", ASK("gpt-5", "true"), &r);
    RUN_UNTIL(strstr(test_req_body(t), CH_ROLE) != NULL);
    ok(!t->ended);
    is_int(t->req.res.status, 200);
    upstream_continue();
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_res_header(t, "content-type"), "text/event-stream");
    is_str(test_req_res_header(t, "x-request-id"), "req_1");
    is_str(test_req_res_header(t, "x-ratelimit-remaining-requests"), "9");
    is_str(test_req_res_header(t, "x-poe-internal"), NULL);
    is_str(test_req_body(t), CH_ROLE CH_TEXT CH_STOP CH_USAGE CH_DONE);
    is_int(r->usage.input_tokens, 10);
    is_int(r->usage.cache_read_input_tokens, 20);
    is_int(r->usage.output_tokens, 4);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);

    /* a finish_reason, then a clean end without [DONE]: complete, with the gateway's [DONE] */
    static const upstream_answer_t no_done = {{SSE_HEAD(""), CH_ROLE CH_TEXT CH_STOP}};
    upstream_expect(&no_done);
    t = start("gpt-5", ASK("gpt-5", "true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_body(t), CH_ROLE CH_TEXT CH_STOP CH_DONE);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_stream_fails(void)
{
    char type[64], code[16];

    /* a clean end before the answer finished: one error event in OpenAI's shape, and nothing after it */
    static const upstream_answer_t short_ = {{SSE_HEAD(""), CH_ROLE CH_TEXT}};
    upstream_expect(&short_);
    test_req_t *t = start("gpt-5", ASK("gpt-5", "true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    const char *body = test_req_body(t);
    ok(strncmp(body, CH_ROLE CH_TEXT "data: {\"error\":", strlen(CH_ROLE CH_TEXT "data: {\"error\":")) == 0);
    const char *json = body + strlen(CH_ROLE CH_TEXT "data: ");
    char *event = strndup(json, strlen(json) - 2);
    ok(strcmp(json + strlen(json) - 2, "\n\n") == 0);
    ok(openai_error_of(event, type, sizeof(type), code, sizeof(code)));
    is_str(type, "api_error");
    is_str(code, "502");
    free(event);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* data a client's SDK could not parse: not relayed */
    static const upstream_answer_t bad = {{SSE_HEAD(""), CH_ROLE "data: {\"choices\":[\n\n" CH_DONE}};
    upstream_expect(&bad);
    t = start("gpt-5", ASK("gpt-5", "true"), NULL);
    RUN_UNTIL(t->ended);
    ok(strstr(test_req_body(t), "choices\":[\n") == NULL);
    ok(strstr(test_req_body(t), "[DONE]") == NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* Poe's error as the first chunk: an error status from its code, OpenAI-shaped */
    static const upstream_answer_t first = {
        {SSE_HEAD(""), "data: {\"error\":{\"code\":429,\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"}};
    upstream_expect(&first);
    t = start("gpt-5", ASK("gpt-5", "true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 429);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    ok(openai_error_of(test_req_body(t), type, sizeof(type), code, sizeof(code)));
    is_str(code, "429");
    ok(strstr(test_req_body(t), "slow down") != NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* Poe's error after the first chunk: relayed, and the end */
    static const upstream_answer_t mid = {
        {SSE_HEAD(""), CH_ROLE "data: {\"error\":{\"message\":\"gone\",\"type\":\"server_error\"}}\n\n" CH_TEXT CH_DONE}};
    upstream_expect(&mid);
    t = start("gpt-5", ASK("gpt-5", "true"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), CH_ROLE "data: {\"error\":{\"message\":\"gone\",\"type\":\"server_error\"}}\n\n");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);
}

static void test_errors(void)
{
    char type[64], code[16];

    /* Poe's own OpenAI-shaped error: relayed with its status, the key redacted */
    static const upstream_answer_t refused = {
        {JSON_HEAD("400 Bad Request", "") "{\"error\":{\"code\":400,\"type\":\"invalid_request_error\",\"message\":"
                                          "\"Unrecognized request argument supplied: top_k (key " FIXTURE_UPSTREAM_KEY ")\"}}"}};
    upstream_expect(&refused);
    test_req_t *t = start("gpt-5", ASK("gpt-5", "false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 400);
    ok(strstr(test_req_body(t), "Unrecognized request argument supplied: top_k") != NULL);
    ok(strstr(test_req_body(t), FIXTURE_UPSTREAM_KEY) == NULL);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* Poe refusing the gateway's key: the gateway's 502, not Poe's 401 (the client's key is fine) */
    static const upstream_answer_t bad_key = {
        {JSON_HEAD("401 Unauthorized", "") "{\"error\":{\"code\":401,\"type\":\"authentication_error\",\"message\":\"no\"}}"}};
    upstream_expect(&bad_key);
    t = start("gpt-5", ASK("gpt-5", "false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    ok(openai_error_of(test_req_body(t), type, sizeof(type), code, sizeof(code)));
    is_str(type, "api_error");
    is_str(code, "502");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* Poe unreachable: 502, OpenAI-shaped */
    t = start("claude-dead", ASK("claude-dead", "false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    ok(openai_error_of(test_req_body(t), type, sizeof(type), code, sizeof(code)));
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* a whole answer that is not one JSON object, and one holding an error object */
    static const upstream_answer_t cut = {{JSON_HEAD("200 OK", "") "{\"id\":\"c1\",\"choices\":["}};
    upstream_expect(&cut);
    t = start("gpt-5", ASK("gpt-5", "false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 502);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
    static const upstream_answer_t inside = {
        {JSON_HEAD("200 OK", "") "{\"error\":{\"code\":529,\"type\":\"overloaded_error\",\"message\":\"busy\"}}"}};
    upstream_expect(&inside);
    t = start("gpt-5", ASK("gpt-5", "false"), NULL);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 529);
    ok(openai_error_of(test_req_body(t), type, sizeof(type), code, sizeof(code)));
    is_str(type, "overloaded_error");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);
}

static void test_helpers(void)
{
    ok(has_finish_reason(H2O_STRLIT("{\"choices\":[{\"finish_reason\" : \"stop\"}]}")));
    ok(!has_finish_reason(H2O_STRLIT("{\"choices\":[{\"finish_reason\":null}]}")));
    ok(!has_finish_reason(H2O_STRLIT("{\"choices\":[{\"delta\":{\"content\":\"finish_reason\"}}]}")));
    ok(has_error_object(H2O_STRLIT("{\"error\":{\"message\":\"x\"}}"), 1));
    ok(!has_error_object(H2O_STRLIT("{\"error\":\"boom\"}"), 0));
    ok(!has_error_object(H2O_STRLIT("{\"choices\":[{\"delta\":{\"content\":\"error\"}}]}"), 0));
    ok(!has_error_object(H2O_STRLIT("{\"error\":{\"type\":\"x\"}}"), 1));
}

void test_src__openai_passthrough_c(void)
{
    subtest("the request to Poe", test_upstream_request);
    subtest("a stream", test_stream);
    subtest("a stream that fails", test_stream_fails);
    subtest("errors", test_errors);
    subtest("helpers", test_helpers);
}
