/* poe-gateway: MIT licence. The client side of a proxied response: one send in flight, flow control against the upstream,
 * SSE pings on silence, hang-up detection for HTTP/1 clients, and how a response may end. Shared by both route kinds.
 *
 * h2o allows one send in flight per response: bytes accumulate in `pending`, go to h2o through a double buffer when
 * nothing is in flight, and `proceed` sends the rest (the pattern of h2o's proxy). Past PGW_RELAY_HIGH_WATER the route's
 * on_body pauses the upstream transfer; `proceed` resumes it once the client has drained half. Bytes that the upstream
 * delivers while being resumed are queued, and sent when the resume returns.
 *
 * Ends. A route ends its response through pgw_relay_complete, pgw_relay_end or pgw_relay_fail (relay.h states the
 * contract they keep); each sets `ended` and `done`. A hang-up sets `done` and `abort` (nothing can reach the client any
 * more). The last send checks that one of these happened, so that no route can end a stream silently by mistake.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "relay/relay.h"
#include "serve/worker.h"

#define MODULE_NAME "relay"
#define HANGUP_POLL_MS 250

/* The request's timers; freed in their close callbacks, which may run after the request pool is gone. */
struct st_pgw_relay_timers_t {
    uv_timer_t ping;  /* event streams: a ping after upstream silence */
    uv_timer_t watch; /* HTTP/1 clients: polls for a hang-up that h2o 2.2.5 would not see */
    uv_timer_t aux;   /* the route's own one-shot timer */
    void (*aux_cb)(pgw_relay_t *rl);
    pgw_relay_t *owner; /* NULL once the request is gone */
    int open;
};

static void on_ping(uv_timer_t *timer);

/* The stream's one error event: Anthropic's `error` event, or for an OpenAI client a data event holding OpenAI's error
 * body (which OpenAI's SDKs raise as an error). */
static void append_error_event(pgw_relay_t *rl, int status, const char *type, const char *msg, size_t len)
{
    if (rl->openai) {
        pgw_buf_append_lit(&rl->pending, "data: ");
        pgw_openai_error_json(&rl->pending, status, type, msg, len);
    } else {
        pgw_buf_append_lit(&rl->pending, "event: error\ndata: ");
        pgw_error_json(&rl->pending, type, msg, len);
    }
    pgw_buf_append_lit(&rl->pending, "\n\n");
}

void pgw_relay_send(pgw_relay_t *rl)
{
    if (rl->resuming || rl->final_sent || rl->sending.bytes_inflight != 0)
        return;
    h2o_iovec_t buf = h2o_doublebuffer_prepare(&rl->sending, &rl->pending, SIZE_MAX);
    int last = rl->done && rl->pending->size == 0;
    if (buf.len == 0 && !last)
        return;
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (last && !rl->ended && !rl->abort) {
        /* a route ended without saying how: never let that pass for a complete answer */
        pgw_log_error(MODULE_NAME, "route %s: a response ended without completing or failing; ending it as broken",
                      rl->route->model_name);
        rl->r->outcome = rl->r->outcome != PGW_OUTCOME_OK ? rl->r->outcome : PGW_OUTCOME_UPSTREAM_CUT;
        rl->ended = 1;
        if (rl->stream) {
            static const char msg[] = "the gateway ended this stream without completing it";
            append_error_event(rl, 502, PGW_ERR_API, msg, sizeof(msg) - 1);
            buf = h2o_doublebuffer_prepare(&rl->sending, &rl->pending, SIZE_MAX);
            last = rl->pending->size == 0;
        } else {
            rl->abort = 1;
        }
    }
    if (last) {
        rl->final_sent = 1;
        state = rl->abort ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    }
    if (buf.len != 0)
        rl->last_write = uv_now(&rl->r->worker->loop);
    h2o_send(rl->r->req, &buf, buf.len != 0 ? 1 : 0, state);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    pgw_relay_t *rl = (pgw_relay_t *)generator;
    h2o_doublebuffer_consume(&rl->sending);
    if (rl->paused && rl->transfer != NULL && rl->pending->size < PGW_RELAY_HIGH_WATER / 2) {
        rl->paused = 0;
        rl->resuming = 1;
        pgw_upstream_resume(rl->transfer);
        rl->resuming = 0;
    }
    pgw_relay_send(rl);
}

void pgw_relay_stop_upstream(pgw_relay_t *rl)
{
    if (rl->transfer != NULL) {
        pgw_upstream_cancel(rl->transfer);
        rl->transfer = NULL;
    }
    uv_timer_stop(&rl->timers->ping);
    uv_timer_stop(&rl->timers->aux);
}

/* The client went away: nothing more is sent, and Poe's stream is reset at once. */
static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    pgw_relay_t *rl = (pgw_relay_t *)generator;
    if (rl->r->outcome == PGW_OUTCOME_OK && !rl->final_sent)
        rl->r->outcome = PGW_OUTCOME_CLIENT_GONE;
    pgw_relay_stop_upstream(rl);
    uv_timer_stop(&rl->timers->watch);
}

void pgw_relay_start(pgw_relay_t *rl)
{
    rl->started = 1;
    rl->super.proceed = on_proceed;
    rl->super.stop = on_stop;
    h2o_start_response(rl->r->req, &rl->super);
}

void pgw_relay_start_stream(pgw_relay_t *rl, pgw_relay_can_ping_cb can_ping)
{
    h2o_req_t *req = rl->r->req;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("text/event-stream"), 1);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, H2O_STRLIT("no-cache"), 1);
    rl->stream = 1;
    rl->can_ping = can_ping;
    rl->last_write = uv_now(&rl->r->worker->loop);
    uv_timer_start(&rl->timers->ping, on_ping, PGW_RELAY_PING_MS, 0);
    pgw_relay_start(rl);
}

void pgw_relay_complete(pgw_relay_t *rl)
{
    pgw_relay_end(rl, PGW_OUTCOME_OK);
}

void pgw_relay_end(pgw_relay_t *rl, pgw_outcome_t outcome)
{
    if (rl->r->outcome == PGW_OUTCOME_OK)
        rl->r->outcome = outcome;
    rl->ended = 1;
    rl->done = 1;
    pgw_relay_send(rl);
}

void pgw_relay_fail(pgw_relay_t *rl, pgw_outcome_t outcome, int status, const char *type, const char *fmt, ...)
{
    h2o_req_t *req = rl->r->req;
    char msg[1024];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    if (n < 0)
        msg[0] = '\0';
    pgw_redact(msg, rl->route->api_key);

    if (pgw_relay_hand_off(rl, status)) {
        pgw_log_info(MODULE_NAME, "%s (a fallback takes the request)", msg); /* what the client would have read */
        return;
    }
    pgw_relay_stop_upstream(rl);
    if (rl->final_sent)
        return;
    if (rl->r->outcome == PGW_OUTCOME_OK)
        rl->r->outcome = outcome;
    if (!rl->started) {
        pgw_relay_respond_directly(rl);
        pgw_send_error_as(req, rl->openai, status, type, "%s", msg);
        return;
    }
    rl->ended = 1;
    rl->done = 1;
    if (rl->stream) {
        append_error_event(rl, status, type, msg, strlen(msg));
    } else {
        rl->abort = 1; /* a whole body that started cannot take an error any more: end it as incomplete */
    }
    pgw_relay_send(rl);
}

int pgw_relay_hand_off(pgw_relay_t *rl, int status)
{
    if (rl->started || rl->r->fallback == NULL || !rl->r->fallback(rl->r, status))
        return 0;
    /* another route answers: nothing of this one may reach the client (docs/request-path.md#fallbacks) */
    pgw_relay_stop_upstream(rl);
    pgw_relay_respond_directly(rl);
    return 1;
}

void pgw_relay_respond_directly(pgw_relay_t *rl)
{
    rl->started = 1;
    rl->ended = 1;
    rl->final_sent = 1;
    uv_timer_stop(&rl->timers->watch);
    uv_timer_stop(&rl->timers->ping);
}

int pgw_relay_should_pause(pgw_relay_t *rl)
{
    if (rl->pending->size < PGW_RELAY_HIGH_WATER)
        return 0;
    rl->paused = 1;
    return 1;
}

static void on_ping(uv_timer_t *timer)
{
    struct st_pgw_relay_timers_t *timers = timer->data;
    pgw_relay_t *rl = timers->owner;
    uint64_t now = uv_now(timer->loop), idle = now - rl->last_write;
    if (idle < PGW_RELAY_PING_MS) {
        uv_timer_start(timer, on_ping, PGW_RELAY_PING_MS - idle, 0);
        return;
    }
    uv_timer_start(timer, on_ping, PGW_RELAY_PING_MS, 0);
    if (!rl->final_sent && !rl->done && rl->pending->size == 0 && rl->can_ping(rl)) {
        /* an OpenAI client would take any data event for a chunk: it gets an SSE comment, which every reader skips */
        if (rl->openai)
            pgw_buf_append_lit(&rl->pending, ": ping\n\n");
        else
            pgw_buf_append_lit(&rl->pending, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
        pgw_relay_send(rl);
    }
}


/*
 * HTTP/1 only: h2o 2.2.5 does not read a connection while its request is processed, so a client that hangs up while Poe
 * is silent would go unnoticed until the next write. Poll the socket for the peer's FIN instead; on a hang-up, reset
 * the upstream at once and end the response so that h2o closes the connection.
 */
static void on_watch(uv_timer_t *timer)
{
    struct st_pgw_relay_timers_t *timers = timer->data;
    pgw_relay_t *rl = timers->owner;
    h2o_req_t *req = rl->r->req;
    h2o_socket_t *sock;

    if (rl->final_sent || req->conn->callbacks->get_socket == NULL || (sock = req->conn->callbacks->get_socket(req->conn)) == NULL)
        return;
    struct pollfd pfd = {.fd = h2o_socket_get_fd(sock), .events = POLLIN | POLLRDHUP};
    if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
        return;
    pgw_log_debug(MODULE_NAME, "route %s: the client hung up; resetting the upstream request", rl->route->model_name);
    pgw_relay_stop_upstream(rl);
    uv_timer_stop(&rl->timers->watch);
    if (rl->r->outcome == PGW_OUTCOME_OK)
        rl->r->outcome = PGW_OUTCOME_CLIENT_GONE;
    req->http1_is_persistent = 0;
    rl->pending->size = 0;
    rl->done = 1;
    rl->abort = 1;
    if (!rl->started)
        pgw_relay_start(rl);
    pgw_relay_send(rl); /* with nothing in flight: ERROR now; otherwise after the next proceed */
}

static void on_aux(uv_timer_t *timer)
{
    struct st_pgw_relay_timers_t *timers = timer->data;
    timers->aux_cb(timers->owner);
}

void pgw_relay_start_timer(pgw_relay_t *rl, uint64_t ms, void (*cb)(pgw_relay_t *rl))
{
    rl->timers->aux_cb = cb;
    uv_timer_start(&rl->timers->aux, on_aux, ms, 0);
}

void pgw_relay_stop_timer(pgw_relay_t *rl)
{
    uv_timer_stop(&rl->timers->aux);
}

static void on_timer_close(uv_handle_t *handle)
{
    struct st_pgw_relay_timers_t *timers = handle->data;
    if (--timers->open == 0)
        free(timers);
}

void pgw_relay_init(pgw_relay_t *rl, pgw_request_t *r, const pgw_route_t *route)
{
    memset(rl, 0, sizeof(*rl));
    rl->r = r;
    rl->route = route;
    h2o_buffer_init(&rl->pending, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&rl->sending, &h2o_socket_buffer_prototype);
    rl->timers = h2o_mem_alloc(sizeof(*rl->timers));
    rl->timers->owner = rl;
    rl->timers->open = 3;
    uv_timer_init(&r->worker->loop, &rl->timers->ping);
    uv_timer_init(&r->worker->loop, &rl->timers->watch);
    uv_timer_init(&r->worker->loop, &rl->timers->aux);
    rl->timers->ping.data = rl->timers->watch.data = rl->timers->aux.data = rl->timers;
    if (r->req->version < 0x200)
        uv_timer_start(&rl->timers->watch, on_watch, HANGUP_POLL_MS, HANGUP_POLL_MS);
}

void pgw_relay_dispose(pgw_relay_t *rl)
{
    pgw_relay_stop_upstream(rl);
    rl->timers->owner = NULL;
    uv_close((uv_handle_t *)&rl->timers->ping, on_timer_close);
    uv_close((uv_handle_t *)&rl->timers->watch, on_timer_close);
    uv_close((uv_handle_t *)&rl->timers->aux, on_timer_close);
    h2o_buffer_dispose(&rl->pending);
    h2o_doublebuffer_dispose(&rl->sending);
}
