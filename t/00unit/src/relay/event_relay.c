/* poe-gateway: MIT licence. Unit tests for src/relay/event_relay.c, what both pass-throughs share: its stop grace and
 * its commit wait, through each route as the handler reaches it (the rest of what it does is tested through each route, in
 * t/00unit/src/relay/passthrough.c and openai_passthrough.c). The requests run on the fixture's worker against its
 * scripted upstream. */
#include <string.h>
#include "relay/event_relay.h"

/* The state the last pgw_event_relay_start allocated, so that a test can reach a relay before h2o holds it as the
 * response's generator. */
static pgw_event_relay_t *last_state;
static void *keep_state(void *p)
{
    return last_state = p;
}
#define h2o_mem_alloc_shared(pool, sz, dispose) keep_state(h2o_mem_alloc_shared(pool, sz, dispose))
#include "../../../../src/relay/event_relay.c"
#undef h2o_mem_alloc_shared
#include "../../fixture.h"
#include "../../test.h"

#define SSE_HEAD "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"
#define ASK(model)                                                                                                                 \
    "{\"model\":\"" model "\",\"max_tokens\":8,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"

/*
 * Poe sends `events`, the last of them its completing event, then keeps the transfer open: the client has the whole
 * answer once the grace period is over (its timer's callback is called here instead of waiting for it), and the
 * lingering transfer is closed.
 */
static void linger(const char *path, const char *auth, const char *key, const char *body, const char *events)
{
    static upstream_answer_t answer = {{SSE_HEAD, NULL}, 1};
    answer.parts[1] = events;
    size_t hangups = upstream_hangups();
    upstream_expect(&answer);
    test_req_t *t = test_req_create("POST", path, body);
    test_req_header(t, auth, key);
    test_req_process(t);
    RUN_UNTIL(strcmp(test_req_body(t), events) == 0);
    /* no turn of the loop since: the grace timer cannot have fired */
    ok(!t->ended);
    pgw_event_relay_t *ev = (pgw_event_relay_t *)t->req._generator; /* the relay is the generator h2o holds */
    ok(ev != NULL && ev->end == PGW_EVENT_RELAY_END_COMPLETE);
    on_stop_grace(&ev->relay);
    RUN_UNTIL(t->ended && upstream_hangups() == hangups + 1);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_body(t), events);
    is_int(upstream_hangups(), hangups + 1);
    is_int(ev->relay.r->outcome, PGW_OUTCOME_OK);
    test_req_destroy(t);
}

static void test_stop_then_linger(void)
{
    linger("/v1/messages", "x-api-key", FIXTURE_MASTER_KEY, ASK("claude-x"),
           "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
           "\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"
           "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

static void test_done_then_linger(void)
{
    linger("/v1/chat/completions", "authorization", "Bearer " FIXTURE_MASTER_KEY, ASK("gpt-5"),
           "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
           "\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
}

/*
 * Poe's head, then nothing until the commit wait has started the client's stream (its timer's callback is called here
 * instead of waiting for it), then Poe's error in `error`: relayed, since the client has its 200 already; it ends the
 * stream.
 */
static void error_after_commit_wait(const char *path, const char *auth, const char *key, const char *body, const char *error)
{
    static upstream_answer_t answer = {{SSE_HEAD, UPSTREAM_WAIT, NULL}};
    answer.parts[2] = error;
    upstream_expect(&answer);
    test_req_t *t = test_req_create("POST", path, body);
    test_req_header(t, auth, key);
    last_state = NULL;
    test_req_process(t);
    pgw_event_relay_t *ev = last_state;
    RUN_UNTIL(ev != NULL && ev->status != 0);
    ok(ev != NULL && ev->status == 200 && !ev->relay.started);
    on_commit_wait(&ev->relay);
    ok(ev->relay.started);
    is_int(t->req.res.status, 200);
    upstream_continue();
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_body(t), error);
    is_int(ev->relay.r->outcome, PGW_OUTCOME_UPSTREAM_ERROR);
    test_req_destroy(t);
}

static void test_error_after_commit_wait(void)
{
    error_after_commit_wait("/v1/messages", "x-api-key", FIXTURE_MASTER_KEY, ASK("claude-x"),
                            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                            "\"message\":\"Overloaded\"}}\n\n");
    error_after_commit_wait("/v1/chat/completions", "authorization", "Bearer " FIXTURE_MASTER_KEY, ASK("gpt-5"),
                            "data: {\"error\":{\"message\":\"gone\",\"type\":\"server_error\"}}\n\n");
}

void test_src__event_relay_c(void)
{
    subtest("message_stop, then a lingering transfer", test_stop_then_linger);
    subtest("[DONE], then a lingering transfer", test_done_then_linger);
    subtest("Poe's error after the commit wait", test_error_after_commit_wait);
}
