/* poe-gateway: MIT licence. POST /v1/chat/completions: an OpenAI-format request goes to Poe's chat/completions as it is,
 * but for the key and the model name; the answer comes back byte for byte, an event at a time, as far as it is a real
 * answer. The twin of src/relay/passthrough.c, in OpenAI's terms (docs/streams.md#the-openai-pass-through).
 *
 * Flow: pgw_openai_passthrough_start splices the route's bot into the client's body, puts Poe's key in an Authorization
 * header and starts a transfer. on_head notes the status and relays the rate-limit headers; then, by what Poe answered:
 * - An event stream (2xx, text/event-stream, to a client that asked for one). The SSE reader cuts it into events, and
 *   each whole event's own bytes are relayed once it has ended (src/relay/relay.c: one send in flight, flow control,
 *   pings as SSE comments, hang-ups); bytes of an event still arriving wait in `held`. The client's 200 goes out with
 *   the first chunk, or after COMMIT_WAIT_MS without one so that pings can flow. The stream is complete once Poe's
 *   `data: [DONE]` was relayed, or when Poe's transfer ends cleanly after a chunk with a finish_reason (the gateway then
 *   writes the `[DONE]`). A chunk holding an `error` object is Poe's error: before anything was relayed it becomes an
 *   error status, after it is relayed and ends the stream. Anything else (the transfer breaking or ending first, data
 *   that is not a JSON object) ends the stream with one error event of the gateway's, or an error status when nothing
 *   was started: the stream contract of relay.h, in its OpenAI form.
 * - A whole answer (2xx to a client that did not ask for a stream). Held until complete and checked to be one JSON
 *   object, so that a cut answer becomes a 502 rather than a 200 with truncated JSON; an `error` object in it is mapped.
 * - An error (any other status). Its body is held (bounded); an OpenAI-shaped error goes to the client byte for byte with
 *   Poe's status, anything else (and Poe refusing the gateway's key) becomes the answer of src/upstream/upstream_errors.c
 *   in OpenAI's shape.
 * Usage is noted from the chunk that carries it (the client asks for it with stream_options.include_usage) or from the
 * whole answer, for the access log, /metrics and /usage. The route's upstream key is redacted from everything relayed.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "common/usage.h"
#include "config/route_match.h"
#include "relay/openai_passthrough.h"
#include "relay/passthrough.h"
#include "relay/relay.h"
#include "relay/sse.h"
#include "serve/reqbody.h"
#include "serve/shaper.h"
#include "serve/worker.h"
#include "upstream/upstream_errors.h"

#define MODULE_NAME "openai_passthrough"
#define MAX_SSE_EVENT (16 * 1024 * 1024)
#define MAX_WHOLE_BODY (64 * 1024 * 1024)
#define MAX_ERROR_BODY (64 * 1024)
#define USAGE_TAIL (64 * 1024)
#define COMMIT_WAIT_MS 5000 /* no chunk for this long after the head: start the stream anyway, so that pings can flow */
#define STOP_GRACE_MS 2000  /* after [DONE], how long the transfer may take to end before the stream is ended */

enum body_kind {
    BODY_STREAM, /* relayed event by event */
    BODY_WHOLE,  /* held, checked, sent whole */
    BODY_ERROR,  /* held (bounded), then relayed or mapped */
};

enum stream_end {
    END_NONE,
    END_DONE,      /* [DONE] was relayed: the answer is complete */
    END_POE_ERROR, /* a chunk holding Poe's `error` object */
    END_UNUSABLE,  /* data that breaks the protocol; `why` says which */
};

typedef struct st_openai_passthrough_t {
    pgw_relay_t relay; /* first: the generator h2o sees */
    int status;        /* Poe's, 0 before the head */
    enum body_kind kind;
    int client_stream; /* the client asked for a stream */
    pgw_sse_reader_t sse;
    h2o_buffer_t *held; /* a stream: bytes of the event still arriving; otherwise the body so far */
    int truncated;      /* the body went past its cap */
    /* the feed in progress (valid only inside on_body) */
    const char *chunk;
    size_t chunk_done; /* bytes of `chunk` already relayed or dropped */
    int seen_chunk;    /* a chunk is relayed or waiting in `pending` */
    int seen_finish;   /* a chunk carried a finish_reason */
    enum stream_end end;
    const char *why;           /* END_UNUSABLE: what was wrong */
    h2o_buffer_t *first_error; /* END_POE_ERROR before anything was relayed: the chunk's data, answered as an error */
} openai_passthrough_t;

static void on_dispose(void *p)
{
    openai_passthrough_t *st = p;
    pgw_relay_dispose(&st->relay);
    pgw_sse_reader_dispose(&st->sse);
    h2o_buffer_dispose(&st->held);
    h2o_buffer_dispose(&st->first_error);
}

static int can_ping(pgw_relay_t *rl)
{
    return 1; /* only whole events are ever pending: the stream always stands between two */
}

/* Headers relayed to the client: rate-limit and retry hints, and Poe's request id. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    openai_passthrough_t *st = ctx;
    h2o_req_t *req = st->relay.r->req;
    int relay = (h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) && st->status >= 200 && st->status <= 299) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("x-request-id")) ||
                (name.len > 12 && memcmp(name.base, "x-ratelimit-", 12) == 0);
    if (relay) {
        h2o_iovec_t n = h2o_strdup(&req->pool, name.base, name.len), v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
}

/* 1 when `json` is an object with a top-level `error` object (OpenAI's error shape, also inside a 2xx). With `message`,
 * the object must also hold a string `message`. Parses only what mentions "error". */
static int has_error_object(const char *json, size_t len, int message)
{
    char *text;
    if (len == 0 || len > MAX_ERROR_BODY || memmem(json, len, "\"error\"", 7) == NULL || (text = malloc(len + 1)) == NULL)
        return 0;
    memcpy(text, json, len);
    text[len] = '\0';
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    static const char *error_path[] = {"error", NULL}, *msg_path[] = {"error", "message", NULL};
    int ok = yajl_tree_get(root, error_path, yajl_t_object) != NULL && (!message || yajl_tree_get(root, msg_path, yajl_t_string));
    yajl_tree_free(root);
    return ok;
}

/* 1 when the chunk carries a finish_reason that is not null. */
static int has_finish_reason(const char *data, size_t len)
{
    static const char key[] = "\"finish_reason\"";
    for (const char *p = data, *end = data + len; (p = memmem(p, end - p, key, sizeof(key) - 1)) != NULL;) {
        p += sizeof(key) - 1;
        while (p != end && (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r'))
            ++p;
        if (p != end && *p == '"')
            return 1;
    }
    return 0;
}

/* Sends `body` as the whole response with `status`, the route's key redacted; the content type is JSON. */
static void respond_json(openai_passthrough_t *st, int status, h2o_buffer_t **body)
{
    pgw_relay_t *rl = &st->relay;
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

/* Poe's error object inside a 2xx (a stream's first chunk, or a whole answer): mapped to a status and sent. */
static void respond_embedded_error(openai_passthrough_t *st, const char *json, size_t len)
{
    pgw_upstream_failure_t f;
    pgw_map_upstream_error(st->status, json, len, st->relay.route->model_name, st->relay.route->api_key, &f);
    pgw_relay_fail(&st->relay, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, "%s", f.message);
}

static void on_stop_grace(pgw_relay_t *rl)
{
    /* Poe sent [DONE] but has not ended the transfer: the answer is whole, and the client need not wait */
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
    openai_passthrough_t *st = pgw_upstream_data(t);
    h2o_iovec_t ctype = pgw_upstream_header(t, H2O_STRLIT("content-type"));
    int is_sse = ctype.len >= 17 && strncasecmp(ctype.base, "text/event-stream", 17) == 0;

    pgw_shaper_observe(st->relay.r->bucket, status, t);
    st->status = status;
    pgw_upstream_foreach_header(t, copy_header, st);
    if (status < 200 || status > 299) {
        st->kind = BODY_ERROR;
    } else if (st->client_stream && is_sse) {
        st->kind = BODY_STREAM;
        pgw_relay_start_timer(&st->relay, COMMIT_WAIT_MS, on_commit_wait);
    } else if (st->client_stream || is_sse) {
        pgw_relay_fail(&st->relay, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe answered a %s request with %s",
                       st->relay.route->model_name, st->client_stream ? "streaming" : "non-streaming",
                       is_sse ? "an event stream" : "a whole body (content-type is not text/event-stream)");
    } else {
        st->kind = BODY_WHOLE;
    }
}

/*
 * One whole event from Poe. Nothing is sent from here (sending may end the request, and the reader with it): the event
 * is checked and its bytes are moved to `pending`, and an end is noted for on_body to act on.
 */
static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    openai_passthrough_t *st = ctx;
    pgw_relay_t *rl = &st->relay;
    size_t end = pgw_sse_reader_event_end(&st->sse);
    h2o_iovec_t raw1 = h2o_iovec_init(st->held->bytes, st->held->size),
                raw2 = h2o_iovec_init(st->chunk + st->chunk_done, end - st->chunk_done);
    st->held->size = 0;
    st->chunk_done = end;

    if (st->end != END_NONE)
        return -1;
    if (h2o_memis(data.base, data.len, H2O_STRLIT("[DONE]"))) {
        st->end = END_DONE;
    } else {
        /* every chunk is one JSON object, and the client's SDK parses each: one that would break there ends the stream
         * here instead */
        pgw_reqbody_t info;
        char err[128];
        if (pgw_reqbody_inspect(data.base, data.len, &info, err, sizeof(err)) != 0) {
            st->end = END_UNUSABLE;
            st->why = "an event whose data is not a JSON object";
            return -1;
        }
        if (has_error_object(data.base, data.len, 0)) {
            st->end = END_POE_ERROR;
            if (!st->seen_chunk) {
                pgw_buf_append(&st->first_error, data.base, data.len);
                return -1;
            }
        } else {
            pgw_usage_note_event(&rl->r->usage, data.base, data.len);
            st->seen_finish |= has_finish_reason(data.base, data.len);
        }
        st->seen_chunk = 1;
    }
    /* relay the event's own bytes, with the route's key redacted */
    size_t at = rl->pending->size;
    pgw_buf_append(&rl->pending, raw1.base, raw1.len);
    pgw_buf_append(&rl->pending, raw2.base, raw2.len);
    rl->pending->size = at + pgw_redact_bytes(rl->pending->bytes + at, rl->pending->size - at, rl->route->api_key);
    return st->end == END_NONE ? 0 : -1;
}

/* After a feed: act on how the stream stands. May end the request: the caller's last use of `st`. */
static void after_events(openai_passthrough_t *st)
{
    pgw_relay_t *rl = &st->relay;

    switch (st->end) {
    case END_NONE:
        if (!rl->started && st->seen_chunk) {
            pgw_relay_stop_timer(rl); /* the commit wait */
            pgw_relay_start_stream(rl, can_ping);
        }
        if (rl->started)
            pgw_relay_send(rl);
        break;
    case END_DONE:
        if (!rl->started)
            pgw_relay_start_stream(rl, can_ping);
        pgw_relay_send(rl);
        /* the transfer's end completes the response; a transfer that lingers is not waited for long */
        pgw_relay_start_timer(rl, STOP_GRACE_MS, on_stop_grace);
        break;
    case END_POE_ERROR:
        pgw_log_warn(MODULE_NAME, "route %s: Poe ended the stream with an error", rl->route->model_name);
        if (!rl->started && !st->seen_chunk) {
            /* nothing was relayed: the error becomes the response, with the status its code or type implies */
            respond_embedded_error(st, st->first_error->bytes, st->first_error->size);
        } else {
            pgw_relay_stop_upstream(rl);
            if (!rl->started) /* the first chunk came in the same read */
                pgw_relay_start_stream(rl, can_ping);
            pgw_relay_end(rl, PGW_OUTCOME_UPSTREAM_ERROR);
        }
        break;
    case END_UNUSABLE:
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe's stream is not a valid answer: %s",
                       rl->route->model_name, st->why);
        break;
    }
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    openai_passthrough_t *st = pgw_upstream_data(t);
    pgw_relay_t *rl = &st->relay;

    if (st->kind != BODY_STREAM) {
        size_t cap = st->kind == BODY_WHOLE ? MAX_WHOLE_BODY : MAX_ERROR_BODY;
        if (st->held->size + len <= cap)
            pgw_buf_append(&st->held, bytes, len);
        else
            st->truncated = 1;
        return 0;
    }
    if (st->end != END_NONE)
        return 0; /* after [DONE]: nothing more is relayed */
    if (pgw_relay_should_pause(rl))
        return 1;
    st->chunk = bytes;
    st->chunk_done = 0;
    if (pgw_sse_reader_feed(&st->sse, bytes, len, on_sse_event, st) != 0 && st->end == END_NONE) {
        st->end = END_UNUSABLE;
        st->why = "an event larger than 16 MB";
    }
    if (st->end == END_NONE) {
        /* the start of an event still arriving waits for its end */
        pgw_buf_append(&st->held, bytes + st->chunk_done, len - st->chunk_done);
        if (st->held->size > MAX_SSE_EVENT) {
            st->end = END_UNUSABLE;
            st->why = "an event larger than 16 MB";
        }
    }
    st->chunk = NULL;
    after_events(st);
    return 0;
}

/* The usage of a whole answer, from the last "usage" key of its tail (where chat/completions puts it). */
static void note_whole_usage(openai_passthrough_t *st)
{
    size_t from = st->held->size > USAGE_TAIL ? st->held->size - USAGE_TAIL : 0;
    const char *tail = st->held->bytes + from, *at = NULL;
    size_t len = st->held->size - from;
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
    pgw_usage_parser_init(&parser, &st->relay.r->usage);
    pgw_usage_parser_feed(&parser, "{", 1);
    pgw_usage_parser_feed(&parser, at, len - (size_t)(at - tail));
    pgw_usage_parser_dispose(&parser);
}

/* An error status from Poe, its body held: byte for byte when OpenAI-shaped, else the shared answer in OpenAI's shape. */
static void respond_error(openai_passthrough_t *st, pgw_upstream_transfer_t *t)
{
    pgw_relay_t *rl = &st->relay;
    pgw_upstream_failure_t f;

    rl->r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
    int own = pgw_upstream_error_answer(rl->r->req, rl->route, t, st->status, st->held->bytes, st->held->size, &f);
    /* Poe's own error, whole, goes as it came: the client's SDK reads Poe's wording (which parameter it refused) */
    if (!own && !st->truncated && has_error_object(st->held->bytes, st->held->size, 1)) {
        respond_json(st, st->status, &st->held);
        return;
    }
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, "%s", f.message);
}

/* A whole answer has arrived: sent if it is one complete JSON object, else a 502. */
static void respond_whole(openai_passthrough_t *st)
{
    pgw_relay_t *rl = &st->relay;
    pgw_reqbody_t info;
    char err[256];

    if (st->truncated) {
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe's answer is larger than %d MB",
                       rl->route->model_name, MAX_WHOLE_BODY / (1024 * 1024));
        return;
    }
    if (st->held->size == 0 || pgw_reqbody_inspect(st->held->bytes, st->held->size, &info, err, sizeof(err)) != 0) {
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe answered %d with %s", rl->route->model_name,
                       st->status, st->held->size == 0 ? "an empty body" : "a body that is not a JSON object");
        return;
    }
    if (has_error_object(st->held->bytes, st->held->size, 0)) {
        respond_embedded_error(st, st->held->bytes, st->held->size);
        return;
    }
    note_whole_usage(st);
    respond_json(st, st->status, &st->held);
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    openai_passthrough_t *st = pgw_upstream_data(t);
    pgw_relay_t *rl = &st->relay;
    const char *route = rl->route->model_name;
    int stalled = err == PGW_UPSTREAM_STALL || err == PGW_UPSTREAM_TIMEOUT;

    rl->transfer = NULL; /* freed by the upstream after this returns */
    if (rl->final_sent)
        return;
    if (st->status == 0) {
        if (err == PGW_UPSTREAM_TIMEOUT)
            pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 504, PGW_ERR_TIMEOUT, "route %s: Poe did not answer: %s", route, errstr);
        else
            pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: cannot reach Poe at %s: %s", route,
                           rl->route->api_base, errstr != NULL ? errstr : "no response");
        return;
    }
    if (st->kind == BODY_ERROR) {
        respond_error(st, t); /* what arrived of it, even when it broke off */
        return;
    }
    if (err != PGW_UPSTREAM_OK && st->end != END_DONE) {
        pgw_log_warn(MODULE_NAME, "route %s: the upstream response broke off: %s", route, errstr);
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, stalled ? 504 : 502, stalled ? PGW_ERR_TIMEOUT : PGW_ERR_API,
                       "route %s: the %s from Poe broke off: %s", route, st->kind == BODY_STREAM ? "stream" : "answer", errstr);
        return;
    }
    if (st->kind == BODY_WHOLE) {
        respond_whole(st);
        return;
    }
    if (st->end == END_DONE) {
        pgw_relay_stop_upstream(rl); /* the grace timer */
        pgw_relay_complete(rl);
        return;
    }
    if (st->seen_finish && pgw_sse_reader_at_boundary(&st->sse)) {
        /* the answer ended with its finish_reason and a clean end of transfer: complete, though Poe wrote no [DONE] */
        if (!rl->started)
            pgw_relay_start_stream(rl, can_ping);
        pgw_buf_append_lit(&rl->pending, "data: [DONE]\n\n");
        pgw_relay_complete(rl);
        return;
    }
    pgw_log_warn(MODULE_NAME, "route %s: Poe's stream ended before the answer was complete", route);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API,
                   "route %s: Poe's stream ended before the answer was complete (no finish_reason, no [DONE])", route);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

void pgw_openai_passthrough_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body)
{
    h2o_req_t *req = r->req;
    char url[2048], model[512], auth[2048];

    int mlen = pgw_route_upstream_model(route, name.base, name.len, model, sizeof(model));
    if (mlen < 0) {
        pgw_send_error_as(req, 1, 400, PGW_ERR_INVALID_REQUEST, "model: name too long for route %s", route->model_name);
        return;
    }
    if (route->kind == PGW_ROUTE_ANTHROPIC) {
        /* Poe's chat/completions serves Claude too, under Poe's name for it (an Anthropic id loses its date) */
        char id[sizeof(model)];
        memcpy(id, model, (size_t)mlen + 1);
        pgw_poe_claude_name(id, model, sizeof(model));
        mlen = (int)strlen(model);
        pgw_passthrough_url(route, "/v1/chat/completions", url, sizeof(url));
    } else {
        snprintf(url, sizeof(url), "%s/chat/completions", route->api_base);
    }
    h2o_iovec_t upbody, more[2];
    pgw_passthrough_splice_model(r, body, model, mlen, &upbody, more);

    struct curl_slist *headers = NULL;
    snprintf(auth, sizeof(auth), "Bearer %s", route->api_key);
    headers = pgw_upstream_add_header(headers, "Authorization", h2o_iovec_init(auth, strlen(auth)));
    headers = pgw_upstream_add_route_headers(headers, route);

    openai_passthrough_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), on_dispose);
    memset(st, 0, sizeof(*st));
    pgw_relay_init(&st->relay, r, route);
    st->relay.openai = 1;
    pgw_sse_reader_init(&st->sse, MAX_SSE_EVENT);
    h2o_buffer_init(&st->held, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&st->first_error, &h2o_socket_buffer_prototype);
    st->client_stream = body->stream;
    pgw_upstream_request_t upreq = {url, "POST", upbody, headers, route->timeout, route->stream_timeout, route->max_retries,
                                    route->ssl_verify, route->h2c, NULL, {more[0], more[1]}};
    st->relay.transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, st);
}
