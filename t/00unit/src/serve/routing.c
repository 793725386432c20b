/* poe-gateway: MIT licence. Unit tests for src/serve/routing.c: which handler a method and path reach, 404 and 405 (with
 * Allow) for the rest, who must authenticate first, and libh2o's own errors in the Anthropic shape. Requests go through
 * h2o_process_request on the fixture's host, as h2o hands them over once read. */
#include <string.h>
#include <yajl/yajl_tree.h>
#include "../../../../src/serve/routing.c"
#include "../../fixture.h"
#include "../../test.h"

#define MESSAGE(model) "{\"model\":\"" model "\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/* Processes `method` `path` with `key` as x-api-key (or none), and runs the loop until it is answered. */
static test_req_t *ask(const char *method, const char *path, const char *key, const char *body)
{
    test_req_t *t = test_req_create(method, path, body);
    if (key != NULL)
        test_req_header(t, "x-api-key", key);
    test_req_process(t);
    RUN_UNTIL(t->ended);
    return t;
}

/* The response's error type and message, "type: message" ("" when it is no Anthropic error). */
static const char *error_of(test_req_t *t)
{
    static char out[512];
    static const char *type_path[] = {"error", "type", NULL}, *msg_path[] = {"error", "message", NULL};
    yajl_val root = yajl_tree_parse(test_req_body(t), NULL, 0);
    const char *type = YAJL_GET_STRING(yajl_tree_get(root, type_path, yajl_t_string)),
               *msg = YAJL_GET_STRING(yajl_tree_get(root, msg_path, yajl_t_string));
    snprintf(out, sizeof(out), "%s%s%s", type != NULL ? type : "", type != NULL ? ": " : "", msg != NULL ? msg : "");
    yajl_tree_free(root);
    return out;
}

/* Status and error of `method` `path` with `key`, "405 invalid_request_error: ..."; the request is disposed. */
static const char *answer(const char *method, const char *path, const char *key)
{
    static char out[600];
    test_req_t *t = ask(method, path, key, NULL);
    snprintf(out, sizeof(out), "%d %s", t->req.res.status, error_of(t));
    test_req_destroy(t);
    return out;
}

static const char *allow_of(const char *method, const char *path)
{
    static char out[64];
    test_req_t *t = ask(method, path, FIXTURE_MASTER_KEY, NULL);
    const char *allow = test_req_res_header(t, "allow");
    snprintf(out, sizeof(out), "%d %s", t->req.res.status, allow != NULL ? allow : "-");
    test_req_destroy(t);
    return out;
}

static void test_matching(void)
{
    /* the pure parts: methods, and exact, trailing-slash and prefix matches */
    is_int(method_bit(h2o_iovec_init(H2O_STRLIT("GET"))), PGW_METHOD_GET);
    is_int(method_bit(h2o_iovec_init(H2O_STRLIT("HEAD"))), PGW_METHOD_HEAD);
    is_int(method_bit(h2o_iovec_init(H2O_STRLIT("POST"))), PGW_METHOD_POST);
    is_int(method_bit(h2o_iovec_init(H2O_STRLIT("get"))), 0);
    is_int(method_bit(h2o_iovec_init(H2O_STRLIT("PATCH"))), 0);
    /* entries shaped as handlers/routes.c declares them: an exact path, and a prefix */
    static const pgw_path_t exact = {H2O_STRLIT("/v1/messages"), 0, PGW_METHOD_POST, "POST", PGW_PATH_AUTH_KEY, NULL},
                            below = {H2O_STRLIT("/v1/models/"), 1, PGW_METHOD_GET, "GET", PGW_PATH_AUTH_KEY, NULL};
    const pgw_path_t *messages = &exact, *model = &below;
    ok(path_matches(messages, h2o_iovec_init(H2O_STRLIT("/v1/messages"))));
    ok(path_matches(messages, h2o_iovec_init(H2O_STRLIT("/v1/messages/"))));
    ok(!path_matches(messages, h2o_iovec_init(H2O_STRLIT("/v1/messages//"))));
    ok(!path_matches(messages, h2o_iovec_init(H2O_STRLIT("/v1/messagesx"))));
    ok(!path_matches(messages, h2o_iovec_init(H2O_STRLIT("/v1/message"))));
    ok(path_matches(model, h2o_iovec_init(H2O_STRLIT("/v1/models/claude-x"))));
    ok(!path_matches(model, h2o_iovec_init(H2O_STRLIT("/v1/models/"))));
    ok(!path_matches(model, h2o_iovec_init(H2O_STRLIT("/v1/models"))));
}

static void test_not_found_and_not_allowed(void)
{
    is_str(answer("GET", "/nope", FIXTURE_MASTER_KEY), "404 not_found_error: no route for GET /nope");
    is_str(answer("POST", "/v1/messagesx", FIXTURE_MASTER_KEY), "404 not_found_error: no route for POST /v1/messagesx");
    is_str(answer("PATCH", "/v1", NULL), "404 not_found_error: no route for PATCH /v1");
    /* a known path with another method: 405 naming both, and Allow listing what the path takes */
    is_str(answer("DELETE", "/v1/messages", FIXTURE_MASTER_KEY),
           "405 invalid_request_error: method DELETE is not allowed on /v1/messages");
    is_str(allow_of("DELETE", "/v1/messages"), "405 POST");
    is_str(allow_of("GET", "/v1/messages/"), "405 POST"); /* the same route with a trailing slash */
    is_str(allow_of("GET", "/v1/messages/count_tokens"), "405 POST");
    is_str(allow_of("POST", "/v1/models"), "405 GET, HEAD");
    is_str(allow_of("PUT", "/v1/models/claude-x"), "405 GET, HEAD");
    is_str(allow_of("POST", "/health/liveliness"), "405 GET, HEAD");
    /* before authentication: a 405 tells nothing a 401 would hide */
    is_str(answer("DELETE", "/v1/messages", NULL), "405 invalid_request_error: method DELETE is not allowed on /v1/messages");
}

static void test_authentication(void)
{
    is_str(answer("GET", "/v1/models", NULL),
           "401 authentication_error: missing API key: send it as x-api-key or Authorization: Bearer");
    is_str(answer("GET", "/v1/models", "sk-wrong"), "401 authentication_error: invalid API key");
    is_str(answer("GET", "/v1/models/claude-renamed", NULL),
           "401 authentication_error: missing API key: send it as x-api-key or Authorization: Bearer");
    is_str(answer("POST", "/v1/messages", "sk-wrong"), "401 authentication_error: invalid API key");
    is_str(answer("POST", "/v1/messages/count_tokens", NULL),
           "401 authentication_error: missing API key: send it as x-api-key or Authorization: Bearer");
    is_str(answer("GET", "/usage", NULL),
           "401 authentication_error: missing API key: send it as x-api-key or Authorization: Bearer");
    is_str(answer("GET", "/metrics", NULL),
           "401 authentication_error: missing API key: send it as x-api-key or Authorization: Bearer");

    /* the master key, a named key, and Authorization: Bearer all reach the handler */
    test_req_t *t = ask("GET", "/v1/models", FIXTURE_MASTER_KEY, NULL);
    is_int(t->req.res.status, 200);
    ok(strstr(test_req_body(t), "\"claude-renamed\"") != NULL);
    test_req_destroy(t);
    t = ask("GET", "/v1/models", FIXTURE_ALICE_KEY, NULL);
    is_int(t->req.res.status, 200);
    test_req_destroy(t);
    t = test_req_create("GET", "/v1/models?beta=true", NULL); /* the query string never affects routing */
    test_req_header(t, "authorization", "Bearer " FIXTURE_MASTER_KEY);
    test_req_process(t);
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 200);
    test_req_destroy(t);
    /* the handler sees who called: /metrics is the master key's unless configured otherwise */
    is_str(answer("GET", "/metrics", FIXTURE_ALICE_KEY), "403 permission_error: only the master key may read /metrics");
    t = ask("GET", "/metrics", FIXTURE_MASTER_KEY, NULL);
    is_int(t->req.res.status, 200);
    ok(strstr(test_req_body(t), "poe_gateway_") != NULL);
    test_req_destroy(t);
}

static void test_probes(void)
{
    /* probes need no key */
    test_req_t *t = ask("GET", "/health/liveliness", NULL, NULL);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), "\"I'm alive!\"");
    test_req_destroy(t);
    t = ask("GET", "/health/liveness?probe=1", NULL, NULL);
    is_int(t->req.res.status, 200);
    test_req_destroy(t);
    t = ask("HEAD", "/api/hello", NULL, NULL);
    is_int(t->req.res.status, 200);
    test_req_destroy(t);
    t = ask("GET", "/health/readiness", NULL, NULL);
    is_int(t->req.res.status, 200);
    ok(strstr(test_req_body(t), "\"status\":\"ready\"") != NULL);
    test_req_destroy(t);
}

static void test_dispatch(void)
{
    /* each path reaches its own handler: count_tokens is not taken for /v1/messages (a local estimate, no upstream) */
    size_t before = upstream_requests();
    test_req_t *t = ask("POST", "/v1/messages/count_tokens", FIXTURE_MASTER_KEY, MESSAGE("gpt-5"));
    is_int(t->req.res.status, 200);
    ok(strncmp(test_req_body(t), "{\"input_tokens\":", 16) == 0);
    test_req_destroy(t);
    is_int(upstream_requests(), before);
    /* /v1/messages validates first: a body that is not JSON is the messages handler's 400 */
    t = ask("POST", "/v1/messages/", FIXTURE_MASTER_KEY, "{");
    is_int(t->req.res.status, 400);
    ok(strncmp(error_of(t), "invalid_request_error: request body is not valid JSON", 53) == 0);
    test_req_destroy(t);
    /* and routes the model, for the key that called: alice may not use gpt-5 */
    t = ask("POST", "/v1/messages", FIXTURE_ALICE_KEY, MESSAGE("gpt-5"));
    is_int(t->req.res.status, 403);
    is_str(error_of(t), "permission_error: key alice may not use model gpt-5");
    test_req_destroy(t);
    /* GET /v1/models/{id} is the one model */
    t = ask("GET", "/v1/models/claude-renamed", FIXTURE_MASTER_KEY, NULL);
    is_int(t->req.res.status, 200);
    ok(strstr(test_req_body(t), "\"id\":\"claude-renamed\"") != NULL);
    test_req_destroy(t);
    is_int(upstream_requests(), before);
}

static void test_h2o_errors(void)
{
    /* what libh2o answers itself, before any handler, goes out in the Anthropic shape too (pgw_routing_register
     * registers the filter on the host) */
    test_req_t *t = test_req_create("POST", "/v1/messages", NULL);
    h2o_send_error_400(&t->req, "Bad Request", "line folding of header fields is not supported", 0);
    ok(t->ended);
    is_int(t->req.res.status, 400);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    is_str(error_of(t), "invalid_request_error: line folding of header fields is not supported");
    test_req_destroy(t);
}

void test_src__routing_c(void)
{
    subtest("matching", test_matching);
    subtest("404 and 405", test_not_found_and_not_allowed);
    subtest("authentication", test_authentication);
    subtest("probes", test_probes);
    subtest("dispatch", test_dispatch);
    subtest("libh2o's own errors", test_h2o_errors);
}
