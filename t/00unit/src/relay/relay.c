/* poe-gateway: MIT licence. Unit tests for src/relay/relay.c: one send in flight, how a response may end (the stream contract
 * and its safety net), pings on silence, the HTTP/1 hang-up watch, and what a client that goes away leaves behind. The
 * relay runs on the fixture's worker as a route would use it, with no upstream transfer. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../../../src/relay/relay.c"
#include "../../fixture.h"
#include "../../test.h"

#define EVENT_START "event: message_start\ndata: {\"type\":\"message_start\"}\n\n"
#define EVENT_DELTA "event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n"

static int may_ping = 1;

static int test_can_ping(pgw_relay_t *rl)
{
    return may_ping;
}

static void on_relay_dispose(void *p)
{
    pgw_relay_dispose(p);
}

/* A relay as a route makes one: a shared entry of the request's pool, disposed with it. */
static pgw_relay_t *relay_for(test_req_t *t, pgw_request_t *r)
{
    pgw_relay_t *rl = h2o_mem_alloc_shared(&t->req.pool, sizeof(*rl), on_relay_dispose);
    pgw_relay_init(rl, r, fixture_route("claude-*"));
    return rl;
}

static pgw_relay_t *timer_fired;

static void on_route_timer(pgw_relay_t *rl)
{
    timer_fired = rl;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        ++n;
    return n;
}

static void test_one_send_in_flight(void)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    t->auto_proceed = 0;
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);

    pgw_relay_start_stream(rl, test_can_ping);
    is_int(t->sends, 0); /* starting sends nothing: the head goes with the first bytes */
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    is_int(t->sends, 1);
    is_int(t->req.res.status, 200);
    is_str(test_req_res_header(t, "content-type"), "text/event-stream");
    is_str(test_req_res_header(t, "cache-control"), "no-cache");

    /* while h2o holds a send, bytes wait in pending */
    pgw_buf_append_lit(&rl->pending, EVENT_DELTA);
    pgw_relay_send(rl);
    is_int(t->sends, 1);
    test_req_proceed(t);
    is_int(t->sends, 2);
    is_str(test_req_body(t), EVENT_START EVENT_DELTA);

    /* the end waits for the send in flight too, and then is the last send, complete */
    pgw_buf_append_lit(&rl->pending, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    pgw_relay_end(rl, PGW_OUTCOME_OK);
    is_int(t->sends, 2);
    ok(!t->ended);
    test_req_proceed(t);
    ok(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    ok(ends_with(test_req_body(t), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_ended_without_saying_how(void)
{
    char log[2048];

    /* a stream whose route set `done` without completing or failing: one error event of the gateway's, and broken */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    RUN_UNTIL(!t->in_flight);
    stderr_capture_begin();
    rl->done = 1;
    pgw_relay_send(rl);
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "route claude-*: a response ended without completing or failing; ending it as broken") != NULL);
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_body(t), EVENT_START "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                                         "\"the gateway ended this stream without completing it\"}}\n\n");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* the same for a whole answer: it cannot take an error any more, so it ends as incomplete, never as complete */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    t->req.res.status = 200;
    pgw_relay_start(rl);
    pgw_buf_append_lit(&rl->pending, "{\"type\":\"message\",");
    stderr_capture_begin();
    rl->done = 1;
    pgw_relay_send(rl);
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "ending it as broken") != NULL);
    ok(t->ended);
    is_int(t->end, H2O_SEND_STATE_ERROR);
    is_str(test_req_body(t), "{\"type\":\"message\",");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* an outcome noted before stays: the first end that was noted counts */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
    stderr_capture_begin();
    rl->done = 1;
    pgw_relay_send(rl);
    stderr_capture_end(log, sizeof(log));
    ok(t->ended);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* a hang-up ends with done and abort, and is not a route's mistake: nothing is added, nothing logged */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    stderr_capture_begin();
    rl->done = 1;
    rl->abort = 1;
    pgw_relay_send(rl);
    stderr_capture_end(log, sizeof(log));
    is_str(log, "");
    is_int(t->end, H2O_SEND_STATE_ERROR);
    is_str(test_req_body(t), "");
    test_req_destroy(t);
}

static void test_fail(void)
{
    /* before anything started: an error status with an Anthropic body, the route's key redacted */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 504, "timeout_error", "route %s: Poe said %s", "claude-*", FIXTURE_UPSTREAM_KEY);
    ok(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 504);
    is_str(test_req_res_header(t, "content-type"), "application/json");
    is_str(test_req_body(t),
           "{\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":\"route claude-*: Poe said [redacted]\"}}");
    /* whatever the route does next reaches nobody */
    size_t sends = t->sends;
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    pgw_relay_end(rl, PGW_OUTCOME_OK);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, 500, "api_error", "again");
    is_int(t->sends, sends);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);

    /* in a stream: exactly one error event at the end, and nothing after it */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    pgw_relay_start_timer(rl, 1000, on_route_timer);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, 529, "overloaded_error", "Poe is overloaded");
    ok(!uv_is_active((uv_handle_t *)&rl->timers->aux)); /* failing stops the upstream, and the route's timer with it */
    ok(!uv_is_active((uv_handle_t *)&rl->timers->ping));
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_int(t->req.res.status, 200);
    is_str(test_req_body(t), EVENT_START "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                         "\"message\":\"Poe is overloaded\"}}\n\n");
    sends = t->sends;
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, "api_error", "twice");
    pgw_relay_end(rl, PGW_OUTCOME_UPSTREAM_CUT);
    is_int(t->sends, sends);
    is_int(count(test_req_body(t), "event: error"), 1);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* a whole body that started: never passed off as complete */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    t->req.res.status = 200;
    pgw_relay_start(rl);
    pgw_buf_append_lit(&rl->pending, "{\"type\":\"message\",");
    pgw_relay_send(rl);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, "api_error", "broke off");
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_ERROR);
    is_str(test_req_body(t), "{\"type\":\"message\",");
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_CUT);
}

static void test_should_pause(void)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    h2o_buffer_reserve(&rl->pending, PGW_RELAY_HIGH_WATER);
    rl->pending->size = PGW_RELAY_HIGH_WATER - 1;
    ok(!pgw_relay_should_pause(rl));
    ok(!rl->paused);
    rl->pending->size = PGW_RELAY_HIGH_WATER;
    ok(pgw_relay_should_pause(rl));
    ok(rl->paused);
    rl->pending->size = 0;
    pgw_relay_respond_directly(rl);
    pgw_send_error(&t->req, 500, "api_error", "done");
    test_req_destroy(t);
}

static void test_pings(void)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    uv_timer_t *timer = &rl->timers->ping;

    ok(!uv_is_active((uv_handle_t *)timer)); /* pings are for event streams */
    pgw_relay_start_stream(rl, test_can_ping);
    ok(uv_is_active((uv_handle_t *)timer));
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    RUN_UNTIL(!t->in_flight);
    size_t sends = t->sends;

    /* the timer fires after a write less than PING_MS ago: no ping, the timer waits out the rest */
    on_ping(timer);
    is_int(t->sends, sends);
    ok(uv_is_active((uv_handle_t *)timer));
    ok(uv_timer_get_due_in(timer) <= PGW_RELAY_PING_MS);

    /* PING_MS of silence: a ping */
    rl->last_write = uv_now(timer->loop) - PGW_RELAY_PING_MS;
    on_ping(timer);
    is_int(t->sends, sends + 1);
    is_str(test_req_body(t), EVENT_START "event: ping\ndata: {\"type\": \"ping\"}\n\n");
    RUN_UNTIL(!t->in_flight);

    /* not when the route says the stream stands inside an event */
    may_ping = 0;
    rl->last_write = uv_now(timer->loop) - PGW_RELAY_PING_MS;
    on_ping(timer);
    is_int(t->sends, sends + 1);
    may_ping = 1;

    /* not while bytes wait to be sent (a ping would land inside them) */
    pgw_buf_append_lit(&rl->pending, "event: content_block_delta\n");
    rl->last_write = uv_now(timer->loop) - PGW_RELAY_PING_MS;
    on_ping(timer);
    is_int(t->sends, sends + 1);
    is_int(count(test_req_body(t), "event: ping"), 1);

    /* not once the answer is over */
    pgw_buf_append_lit(&rl->pending, "data: {}\n\n");
    pgw_relay_end(rl, PGW_OUTCOME_OK);
    RUN_UNTIL(t->ended);
    sends = t->sends;
    rl->last_write = uv_now(timer->loop) - PGW_RELAY_PING_MS;
    on_ping(timer);
    is_int(t->sends, sends);
    test_req_destroy(t);
}

static void test_openai_client(void)
{
    /* an OpenAI client: a ping is an SSE comment (a data event would be taken for a chunk), the one error a data event
     * holding OpenAI's error body */
    test_req_t *t = test_req_create("POST", "/v1/chat/completions", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    rl->openai = 1;
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, "data: {\"choices\":[]}\n\n");
    pgw_relay_send(rl);
    RUN_UNTIL(!t->in_flight);
    rl->last_write = uv_now(&r->worker->loop) - PGW_RELAY_PING_MS;
    on_ping(&rl->timers->ping);
    RUN_UNTIL(!t->in_flight);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "cut");
    RUN_UNTIL(t->ended);
    is_int(t->end, H2O_SEND_STATE_FINAL);
    is_str(test_req_body(t), "data: {\"choices\":[]}\n\n: ping\n\n"
                             "data: {\"error\":{\"message\":\"cut\",\"type\":\"api_error\",\"param\":null,\"code\":\"502\"}}\n\n");
    test_req_destroy(t);

    /* nothing started: an error status with OpenAI's body */
    t = test_req_create("POST", "/v1/chat/completions", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    rl->openai = 1;
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 504, PGW_ERR_TIMEOUT, "slow");
    RUN_UNTIL(t->ended);
    is_int(t->req.res.status, 504);
    is_str(test_req_body(t), "{\"error\":{\"message\":\"slow\",\"type\":\"timeout_error\",\"param\":null,\"code\":\"504\"}}");
    test_req_destroy(t);
}

static void on_handle_closed(uv_handle_t *handle)
{
    free(handle);
}

/* An h2o socket on one end of a loopback TCP pair; `*peer` is the client's end. */
static h2o_socket_t *client_socket(int *peer)
{
    int fds[2];
    tcp_pair(fds);
    uv_tcp_t *tcp = malloc(sizeof(*tcp));
    uv_tcp_init(&fixture_worker()->loop, tcp);
    uv_tcp_open(tcp, fds[0]);
    *peer = fds[1];
    return h2o_uv_socket_create((uv_stream_t *)tcp, on_handle_closed);
}

static void test_hangup_watch(void)
{
    int peer;

    /* HTTP/2: h2o sees a client's reset itself, so there is no watch */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    t->req.version = 0x200;
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->watch));
    pgw_relay_respond_directly(rl);
    pgw_send_error(&t->req, 500, "api_error", "done");
    test_req_destroy(t);

    /* HTTP/1 in a stream: a client still there is left alone; one that hung up ends the response as broken at once */
    t = test_req_create("POST", "/v1/messages", "{}");
    t->sock = client_socket(&peer);
    t->req.http1_is_persistent = 1;
    r = test_req_begin(t);
    rl = relay_for(t, r);
    ok(uv_is_active((uv_handle_t *)&rl->timers->watch));
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    RUN_UNTIL(!t->in_flight);
    on_watch(&rl->timers->watch);
    ok(!t->ended);
    ok(uv_is_active((uv_handle_t *)&rl->timers->watch));
    pgw_buf_append_lit(&rl->pending, "event: content_block_delta\n"); /* not sent: nobody is there to read it */
    close(peer);
    on_watch(&rl->timers->watch);
    ok(t->ended);
    is_int(t->end, H2O_SEND_STATE_ERROR);
    is_str(test_req_body(t), EVENT_START);
    ok(!t->req.http1_is_persistent);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->watch));
    ok(!uv_is_active((uv_handle_t *)&rl->timers->ping));
    h2o_socket_t *sock = t->sock;
    is_int(test_req_destroy(t), PGW_OUTCOME_CLIENT_GONE);
    h2o_socket_close(sock);

    /* a hang-up before anything was started still ends the request */
    t = test_req_create("POST", "/v1/messages", "{}");
    t->sock = client_socket(&peer);
    r = test_req_begin(t);
    rl = relay_for(t, r);
    shutdown(peer, SHUT_WR);
    on_watch(&rl->timers->watch);
    ok(rl->started);
    ok(t->ended);
    is_int(t->end, H2O_SEND_STATE_ERROR);
    sock = t->sock;
    is_int(test_req_destroy(t), PGW_OUTCOME_CLIENT_GONE);
    h2o_socket_close(sock);
    close(peer);
    fixture_settle();
}

static void test_client_gone(void)
{
    /* h2o stops the generator of a response that is not over: the client went away */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    t->auto_proceed = 0;
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    ok(t->in_flight);
    is_int(test_req_destroy(t), PGW_OUTCOME_CLIENT_GONE);

    /* after the last send, disposing is the normal end: the outcome stays */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_end(rl, PGW_OUTCOME_OK);
    RUN_UNTIL(t->ended);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static void test_respond_directly(void)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    pgw_relay_respond_directly(rl);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->watch));
    pgw_send_error(&t->req, 400, "invalid_request_error", "bad");
    size_t sends = t->sends;
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, "api_error", "late");
    is_int(t->sends, sends);
    is_int(t->req.res.status, 400);
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);
}

static int offered_status, take_offer;

static int test_fallback(pgw_request_t *r, int status)
{
    offered_status = status;
    return take_offer;
}

/* The seam for fallbacks: before anything started, a failure is offered to the request's fallback first. */
static void test_hand_off(void)
{
    /* taken: nothing reaches the client from this relay, now or later, and its timers stop */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    r->fallback = test_fallback;
    take_offer = 1;
    pgw_relay_t *rl = relay_for(t, r);
    pgw_relay_start_timer(rl, 1000, on_route_timer);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, 529, "overloaded_error", "Poe is overloaded");
    is_int(offered_status, 529);
    ok(!t->ended);
    is_int(t->sends, 0);
    is_int(t->req.res.status, 0);
    ok(rl->final_sent);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->aux));
    ok(!uv_is_active((uv_handle_t *)&rl->timers->watch));
    pgw_buf_append_lit(&rl->pending, EVENT_START);
    pgw_relay_send(rl);
    pgw_relay_end(rl, PGW_OUTCOME_OK);
    is_int(t->sends, 0);
    is_int(r->outcome, PGW_OUTCOME_OK); /* the outcome is the next route's to say */
    pgw_send_error(&t->req, 400, "invalid_request_error", "the next route's answer"); /* stands in for the next route */
    is_int(test_req_destroy(t), PGW_OUTCOME_OK);

    /* declined: the error answer as without a fallback */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    r->fallback = test_fallback;
    take_offer = 0;
    offered_status = 0;
    rl = relay_for(t, r);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, 400, "invalid_request_error", "bad");
    is_int(offered_status, 400);
    ok(t->ended);
    is_int(t->req.res.status, 400);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);

    /* after the start nothing is offered: the client has seen bytes */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    r->fallback = test_fallback;
    take_offer = 1;
    offered_status = 0;
    rl = relay_for(t, r);
    pgw_relay_start_stream(rl, test_can_ping);
    ok(!pgw_relay_hand_off(rl, 529));
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, 529, "overloaded_error", "late");
    is_int(offered_status, 0);
    RUN_UNTIL(t->ended);
    is_int(count(test_req_body(t), "event: error"), 1);
    is_int(test_req_destroy(t), PGW_OUTCOME_UPSTREAM_ERROR);
}

static void test_route_timer(void)
{
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    pgw_request_t *r = test_req_begin(t);
    pgw_relay_t *rl = relay_for(t, r);
    timer_fired = NULL;
    pgw_relay_start_timer(rl, 1, on_route_timer);
    RUN_UNTIL(timer_fired != NULL);
    ok(timer_fired == rl);
    /* stopping the upstream stops the route's timer with it */
    pgw_relay_start_timer(rl, 1000, on_route_timer);
    ok(uv_is_active((uv_handle_t *)&rl->timers->aux));
    pgw_relay_stop_upstream(rl);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->aux));
    pgw_relay_start_timer(rl, 1000, on_route_timer);
    pgw_relay_stop_timer(rl);
    ok(!uv_is_active((uv_handle_t *)&rl->timers->aux));
    pgw_relay_respond_directly(rl);
    pgw_send_error(&t->req, 500, "api_error", "done");
    test_req_destroy(t);
}

void test_src__relay_c(void)
{
    subtest("one send in flight", test_one_send_in_flight);
    subtest("ended without saying how", test_ended_without_saying_how);
    subtest("fail", test_fail);
    subtest("should_pause", test_should_pause);
    subtest("pings", test_pings);
    subtest("an OpenAI client", test_openai_client);
    subtest("hang-up watch", test_hangup_watch);
    subtest("client gone", test_client_gone);
    subtest("respond directly", test_respond_directly);
    subtest("hand-off", test_hand_off);
    subtest("route timer", test_route_timer);
}
