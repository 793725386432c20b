/* poe-gateway: MIT licence. The event relay: what the two pass-throughs share of relaying Poe's answer as it came
 * (docs/streams.md#the-pass-through-relay). The route says what each event means and how errors look (its
 * pgw_event_relay_ops_t); everything else is here.
 *
 * How it works. pgw_event_relay_start starts the transfer. on_head notes the status, lets the route copy headers, and
 * decides what the answer is (pgw_event_relay_body_t):
 * - An event stream (2xx, text/event-stream, to a client that asked for one). on_body feeds the SSE reader; on_sse_event
 *   gives each whole event to the route's on_event and, when the route keeps it, moves the event's own bytes (held from
 *   earlier reads in `held`, then this read's) to the relay's `pending` with the route's key redacted, so only whole
 *   events are ever pending and a ping fits any silence. Nothing is sent inside the reader (sending may end the request,
 *   and the reader with it): after the feed, after_events acts on how the stream stands. The client's response waits
 *   for the answer to begin (`begun`), so that an error first can still become an error status or a fallback; 5 s after
 *   the head without that (COMMIT_WAIT_MS) the stream starts anyway, so that pings can flow. A completing event is
 *   relayed and the transfer's end completes the response, or STOP_GRACE_MS later the relay does; Poe's error event
 *   is relayed and ends the stream, or before the answer began becomes the route's error answer; an unusable event,
 *   the transfer breaking, or a clean end without the completing event ends the stream with one error event of the
 *   gateway's (or an error status when nothing started): the stream contract of relay.h.
 * - A whole answer (2xx, anything else, to a client that did not ask for a stream). Held until complete (at most
 *   MAX_WHOLE_BODY) and checked to be one JSON object, so that a cut answer becomes a 502 rather than a 200 with truncated
 *   JSON; its usage is read from its tail.
 * - An error (any other status). Its body is held (at most PGW_EVENT_RELAY_MAX_ERROR_BODY), then offered to the request's
 *   fallback, then relayed as it came when it is an error in the client's own shape (the route's is_own_error), else
 *   answered in that shape by src/upstream/upstream_errors.c.
 */
#include <string.h>
#include <strings.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "common/usage.h"
#include "relay/event_relay.h"
#include "serve/reqbody.h"
#include "serve/shaper.h"
#include "serve/worker.h"
#include "upstream/upstream_errors.h"

#define MAX_SSE_EVENT (16 * 1024 * 1024)
#define MAX_WHOLE_BODY (64 * 1024 * 1024)
#define USAGE_TAIL (64 * 1024)
#define COMMIT_WAIT_MS 5000 /* no event for this long after the head: start the stream anyway, so that pings can flow */
#define STOP_GRACE_MS 2000  /* after the completing event, how long the transfer may take to end before the stream is ended */

static void on_dispose(void *p)
{
    pgw_event_relay_t *ev = p;
    pgw_relay_dispose(&ev->relay);
    pgw_sse_reader_dispose(&ev->sse);
    h2o_buffer_dispose(&ev->held);
    h2o_buffer_dispose(&ev->first_error);
}

static int can_ping(pgw_relay_t *rl)
{
    return 1; /* only whole events are ever pending: the stream always stands between two */
}

void pgw_event_relay_respond_json(pgw_event_relay_t *ev, int status, h2o_buffer_t **body)
{
    pgw_relay_t *rl = &ev->relay;
    h2o_req_t *req = rl->r->req;
    (*body)->size = pgw_redact_bytes((*body)->bytes, (*body)->size, rl->route->api_key);
    req->res.status = status;
    req->res.reason = pgw_status_reason(status);
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
    req->res.content_length = (*body)->size; /* known: an HTTP/1.1 connection stays open after a non-200 too */
    pgw_buf_append(&rl->pending, (*body)->bytes, (*body)->size);
    pgw_relay_start(rl);
    pgw_relay_complete(rl);
}

int pgw_event_relay_check_json(pgw_event_relay_t *ev, h2o_iovec_t data)
{
    pgw_reqbody_t info;
    char err[128];
    if (pgw_reqbody_inspect(data.base, data.len, &info, err, sizeof(err)) == 0) /* a few instructions a byte */
        return 1;
    ev->end = PGW_EVENT_RELAY_END_UNUSABLE;
    ev->why = "an event whose data is not a JSON object";
    return 0;
}

static void on_stop_grace(pgw_relay_t *rl)
{
    /* Poe sent the completing event but has not ended the transfer: the answer is whole, and the client need not wait */
    pgw_relay_stop_upstream(rl);
    pgw_relay_complete(rl);
}

static void on_commit_wait(pgw_relay_t *rl)
{
    if (!rl->started)
        pgw_relay_start_stream(rl, can_ping);
}

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    pgw_event_relay_t *ev = pgw_upstream_data(t);
    h2o_iovec_t ctype = pgw_upstream_header(t, H2O_STRLIT("content-type"));
    int is_sse = ctype.len >= 17 && strncasecmp(ctype.base, "text/event-stream", 17) == 0;

    pgw_shaper_observe(ev->relay.r->bucket, status, t);
    ev->status = status;
    pgw_upstream_foreach_header(t, ev->ops->copy_header, ev);
    if (status < 200 || status > 299) {
        ev->kind = PGW_EVENT_RELAY_ERROR;
    } else if (ev->client_stream && is_sse) {
        ev->kind = PGW_EVENT_RELAY_STREAM;
        pgw_relay_start_timer(&ev->relay, COMMIT_WAIT_MS, on_commit_wait);
    } else if (ev->client_stream || is_sse) {
        pgw_relay_fail(&ev->relay, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe answered a %s request with %s",
                       ev->relay.route->model_name, ev->client_stream ? "streaming" : "non-streaming",
                       is_sse ? "an event stream" : "a whole body (content-type is not text/event-stream)");
    } else {
        ev->kind = PGW_EVENT_RELAY_WHOLE;
    }
}

/* One whole event from Poe: the route reads it; its bytes are moved to `pending` when the route keeps it. */
static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    pgw_event_relay_t *ev = ctx;
    pgw_relay_t *rl = &ev->relay;
    size_t end = pgw_sse_reader_event_end(&ev->sse);
    h2o_iovec_t raw1 = h2o_iovec_init(ev->held->bytes, ev->held->size),
                raw2 = h2o_iovec_init(ev->chunk + ev->chunk_done, end - ev->chunk_done);
    ev->held->size = 0;
    ev->chunk_done = end;

    if (ev->end != PGW_EVENT_RELAY_END_NONE)
        return -1;
    if (ev->ops->on_event(ev, event, data)) {
        /* relay the event's own bytes, with the route's key redacted */
        size_t at = rl->pending->size;
        pgw_buf_append(&rl->pending, raw1.base, raw1.len);
        pgw_buf_append(&rl->pending, raw2.base, raw2.len);
        rl->pending->size = at + pgw_redact_bytes(rl->pending->bytes + at, rl->pending->size - at, rl->route->api_key);
    }
    return ev->end == PGW_EVENT_RELAY_END_NONE ? 0 : -1;
}

/* After a feed: act on how the stream stands. May end the request: the caller's last use of `ev`. */
static void after_events(pgw_event_relay_t *ev)
{
    pgw_relay_t *rl = &ev->relay;

    switch (ev->end) {
    case PGW_EVENT_RELAY_END_NONE:
        if (!rl->started && ev->begun) {
            pgw_relay_stop_timer(rl); /* the commit wait */
            pgw_relay_start_stream(rl, can_ping);
        }
        if (rl->started)
            pgw_relay_send(rl);
        break;
    case PGW_EVENT_RELAY_END_COMPLETE:
        if (!rl->started)
            pgw_relay_start_stream(rl, can_ping);
        pgw_relay_send(rl);
        /* the transfer's end completes the response; a transfer that lingers is not waited for long */
        pgw_relay_start_timer(rl, STOP_GRACE_MS, on_stop_grace);
        break;
    case PGW_EVENT_RELAY_END_POE_ERROR:
        pgw_log_warn(ev->ops->module, "route %s: Poe ended the stream with an error", rl->route->model_name);
        if (!rl->started && !ev->begun) {
            ev->ops->respond_first_error(ev); /* nothing was relayed: the error can still be the response */
        } else {
            pgw_relay_stop_upstream(rl);
            if (!rl->started) /* the answer began in the same read */
                pgw_relay_start_stream(rl, can_ping);
            pgw_relay_end(rl, PGW_OUTCOME_UPSTREAM_ERROR);
        }
        break;
    case PGW_EVENT_RELAY_END_UNUSABLE:
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe's stream is not a valid answer: %s",
                       rl->route->model_name, ev->why);
        break;
    }
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    pgw_event_relay_t *ev = pgw_upstream_data(t);
    pgw_relay_t *rl = &ev->relay;

    if (ev->kind != PGW_EVENT_RELAY_STREAM) {
        size_t cap = ev->kind == PGW_EVENT_RELAY_WHOLE ? MAX_WHOLE_BODY : PGW_EVENT_RELAY_MAX_ERROR_BODY;
        if (ev->held->size + len <= cap)
            pgw_buf_append(&ev->held, bytes, len);
        else
            ev->truncated = 1;
        return 0;
    }
    if (ev->end != PGW_EVENT_RELAY_END_NONE)
        return 0; /* after the completing event: nothing more is relayed */
    if (pgw_relay_should_pause(rl))
        return 1;
    ev->chunk = bytes;
    ev->chunk_done = 0;
    if (pgw_sse_reader_feed(&ev->sse, bytes, len, on_sse_event, ev) != 0 && ev->end == PGW_EVENT_RELAY_END_NONE) {
        ev->end = PGW_EVENT_RELAY_END_UNUSABLE;
        ev->why = "an event larger than 16 MB";
    }
    if (ev->end == PGW_EVENT_RELAY_END_NONE) {
        /* the start of an event still arriving waits for its end */
        pgw_buf_append(&ev->held, bytes + ev->chunk_done, len - ev->chunk_done);
        if (ev->held->size > MAX_SSE_EVENT) {
            ev->end = PGW_EVENT_RELAY_END_UNUSABLE;
            ev->why = "an event larger than 16 MB";
        }
    }
    ev->chunk = NULL;
    after_events(ev);
    return 0;
}

/* The usage of a whole answer, from the last "usage" key of its tail (where both APIs put it). */
static void note_whole_usage(pgw_event_relay_t *ev)
{
    size_t from = ev->held->size > USAGE_TAIL ? ev->held->size - USAGE_TAIL : 0;
    const char *tail = ev->held->bytes + from, *at = NULL;
    size_t len = ev->held->size - from;
    for (size_t off = 0; off + 7 <= len;) {
        const char *p = memmem(tail + off, len - off, "\"usage\"", 7);
        if (p == NULL)
            break;
        at = p;
        off = (size_t)(p - tail) + 7;
    }
    if (at == NULL)
        return;
    /* `{"usage":{...}...`: the parser notes the fields before it meets whatever follows */
    pgw_usage_parser_t parser;
    pgw_usage_parser_init(&parser, &ev->relay.r->usage);
    pgw_usage_parser_feed(&parser, "{", 1);
    pgw_usage_parser_feed(&parser, at, len - (size_t)(at - tail));
    pgw_usage_parser_dispose(&parser);
}

/* A whole answer has arrived: sent if it is one complete JSON object (and not an error in the route's terms), else a 502. */
static void respond_whole(pgw_event_relay_t *ev)
{
    pgw_relay_t *rl = &ev->relay;
    pgw_reqbody_t info;
    char err[256];

    if (ev->truncated) {
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe's answer is larger than %d MB",
                       rl->route->model_name, MAX_WHOLE_BODY / (1024 * 1024));
        return;
    }
    if (ev->held->size == 0 || pgw_reqbody_inspect(ev->held->bytes, ev->held->size, &info, err, sizeof(err)) != 0) {
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe answered %d with %s", rl->route->model_name,
                       ev->status, ev->held->size == 0 ? "an empty body" : "a body that is not a JSON object");
        return;
    }
    if (ev->ops->respond_whole_error != NULL && ev->ops->respond_whole_error(ev))
        return;
    note_whole_usage(ev);
    pgw_event_relay_respond_json(ev, ev->status, &ev->held);
}

/* An error status from Poe, its body held: byte for byte when it is the client's shape of error, else the shared answer
 * (src/upstream/upstream_errors.c). `t` is the ending transfer, for its headers. */
static void respond_error(pgw_event_relay_t *ev, pgw_upstream_transfer_t *t)
{
    pgw_relay_t *rl = &ev->relay;
    pgw_upstream_failure_t f;

    if (pgw_relay_hand_off(rl, ev->status)) /* docs/request-path.md#fallbacks */
        return;
    rl->r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
    int own = pgw_upstream_error_answer(rl->r->req, rl->route, t, ev->status, ev->held->bytes, ev->held->size, &f);
    /* Poe's own error, whole, goes as it came: the client reads Poe's wording (Claude Code's retry logic, an OpenAI SDK's
     * message naming the parameter refused) */
    if (!own && !ev->truncated && ev->ops->is_own_error(ev->held->bytes, ev->held->size)) {
        pgw_event_relay_respond_json(ev, ev->status, &ev->held);
        return;
    }
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, "%s", f.message);
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    pgw_event_relay_t *ev = pgw_upstream_data(t);
    pgw_relay_t *rl = &ev->relay;
    const char *route = rl->route->model_name;
    int stalled = err == PGW_UPSTREAM_STALL || err == PGW_UPSTREAM_TIMEOUT;

    rl->transfer = NULL; /* freed by the upstream after this returns */
    if (rl->final_sent)
        return;
    if (ev->status == 0) {
        if (err == PGW_UPSTREAM_TIMEOUT)
            pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 504, PGW_ERR_TIMEOUT, "route %s: Poe did not answer: %s", route, errstr);
        else
            pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: cannot reach Poe at %s: %s", route,
                           rl->route->api_base, errstr != NULL ? errstr : "no response");
        return;
    }
    if (ev->kind == PGW_EVENT_RELAY_ERROR) {
        respond_error(ev, t); /* what arrived of it, even when it broke off */
        return;
    }
    if (err != PGW_UPSTREAM_OK && ev->end != PGW_EVENT_RELAY_END_COMPLETE) {
        pgw_log_warn(ev->ops->module, "route %s: the upstream response broke off: %s", route, errstr);
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, stalled ? 504 : 502, stalled ? PGW_ERR_TIMEOUT : PGW_ERR_API,
                       "route %s: the %s from Poe broke off: %s", route, ev->kind == PGW_EVENT_RELAY_STREAM ? "stream" : "answer",
                       errstr);
        return;
    }
    if (ev->kind == PGW_EVENT_RELAY_WHOLE) {
        respond_whole(ev);
        return;
    }
    if (ev->end == PGW_EVENT_RELAY_END_COMPLETE) {
        pgw_relay_stop_upstream(rl); /* the grace timer */
        pgw_relay_complete(rl);
        return;
    }
    if (ev->ops->complete_unended != NULL && ev->ops->complete_unended(ev)) {
        if (!rl->started)
            pgw_relay_start_stream(rl, can_ping);
        pgw_relay_complete(rl);
        return;
    }
    pgw_log_warn(ev->ops->module, "route %s: Poe's stream ended before the answer was complete (%s)", route, ev->ops->missing);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API,
                   "route %s: Poe's stream ended before the answer was complete (%s)", route, ev->ops->missing);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

void pgw_event_relay_start(pgw_request_t *r, const pgw_route_t *route, const pgw_event_relay_ops_t *ops, size_t size,
                           int client_stream, const char *url, h2o_iovec_t body, const h2o_iovec_t more[2],
                           struct curl_slist *headers)
{
    pgw_event_relay_t *ev = h2o_mem_alloc_shared(&r->req->pool, size, on_dispose);
    memset(ev, 0, size);
    pgw_relay_init(&ev->relay, r, route);
    ev->relay.openai = ops->openai;
    ev->ops = ops;
    pgw_sse_reader_init(&ev->sse, MAX_SSE_EVENT);
    h2o_buffer_init(&ev->held, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&ev->first_error, &h2o_socket_buffer_prototype);
    ev->client_stream = client_stream;
    pgw_upstream_request_t upreq = {url, "POST", body, headers, route->timeout, route->stream_timeout, route->max_retries,
                                    route->ssl_verify, route->h2c, NULL, {more[0], more[1]}};
    ev->relay.transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, ev);
}
