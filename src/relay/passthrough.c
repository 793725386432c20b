/* poe-gateway: MIT licence. `anthropic/` routes: the request goes to Poe's /v1/messages as it is, but for the key and
 * the model name; the answer comes back byte for byte, an event at a time, but only as far as it is a real answer.
 *
 * Flow: pgw_passthrough_start builds the upstream request (body with only `model` rewritten, Poe's key, every
 * `anthropic-*` header as sent) and starts a transfer. on_head notes the status and relays selected headers; what follows depends
 * on what Poe answered:
 * - An event stream (2xx, text/event-stream, to a client that asked for one). The SSE reader cuts it into events, and
 *   each whole event's own bytes are relayed once the event has ended (src/relay/relay.c: one send in flight, flow control,
 *   pings, hang-ups); bytes of an event still arriving wait in `held`. The client's response starts at the first event:
 *   `message_start` starts a stream, while an `error` event first becomes an error status with that event's body. The
 *   stream is complete only once Poe's `message_stop` was relayed; an `error` event from Poe is relayed and ends it;
 *   anything else (the transfer breaking or ending first, an event that is not JSON, content before message_start)
 *   ends it with one `error` event of the gateway's, or an error status when nothing was started (the stream contract,
 *   relay.h).
 * - A whole answer (2xx, anything else, to a client that did not ask for a stream). It is held until it is complete and
 *   checked to be one JSON object, so that a cut answer becomes a 502 rather than a 200 with truncated JSON.
 * - An error (any other status). Its body is held (bounded); an Anthropic-shaped error goes to the client byte for byte
 *   with Poe's status, anything else (an HTML page, `{"error":"boom"}`, an empty 418, a refused key, a redirect) becomes
 *   the Anthropic error that src/upstream/upstream_errors.c answers on both route kinds.
 * The route's upstream key is redacted from everything relayed: an upstream that quotes the key it was given must not
 * hand it to the client.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "relay/passthrough.h"
#include "relay/relay.h"
#include "serve/reqbody.h"
#include "config/route_match.h"
#include "serve/shaper.h"
#include "relay/sse.h"
#include "upstream/upstream_errors.h"
#include "common/usage.h"
#include "serve/worker.h"

#define MODULE_NAME "passthrough"
#define MAX_SSE_EVENT (16 * 1024 * 1024)
#define MAX_WHOLE_BODY (64 * 1024 * 1024)
#define MAX_ERROR_BODY (64 * 1024)
#define USAGE_TAIL (64 * 1024)
#define COMMIT_WAIT_MS 5000 /* no event for this long after the head: start the stream anyway, so that pings can flow */
#define STOP_GRACE_MS 2000  /* after message_stop, how long the transfer may take to end before the stream is ended */

enum body_kind {
    BODY_STREAM, /* relayed event by event */
    BODY_WHOLE,  /* held, checked, sent whole */
    BODY_ERROR,  /* held (bounded), then relayed or mapped */
};

enum stream_end {
    END_NONE,
    END_STOP,        /* message_stop was relayed: the answer is complete */
    END_POE_ERROR,   /* Poe's own `error` event */
    END_UNUSABLE,    /* an event that breaks the protocol; `why` says which */
};

typedef struct st_passthrough_t {
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
    int seen_start;
    enum stream_end end;
    const char *why;          /* END_UNUSABLE: what was wrong */
    h2o_buffer_t *first_error; /* END_POE_ERROR before the stream started: the event's data, answered as a body */
} passthrough_t;

static void on_dispose(void *p)
{
    passthrough_t *st = p;
    pgw_relay_dispose(&st->relay);
    pgw_sse_reader_dispose(&st->sse);
    h2o_buffer_dispose(&st->held);
    h2o_buffer_dispose(&st->first_error);
}

static int can_ping(pgw_relay_t *rl)
{
    return 1; /* only whole events are ever pending: the stream always stands between two */
}

/* Headers relayed to the client: rate-limit and retry hints, and Poe's request id. An error's Retry-After is the shared
 * error answer's (pgw_upstream_error_answer), as on the translated routes. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    passthrough_t *st = ctx;
    h2o_req_t *req = st->relay.r->req;
    int relay = (h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) && st->status >= 200 && st->status <= 299) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("request-id")) ||
                (name.len > 20 && memcmp(name.base, "anthropic-ratelimit-", 20) == 0) ||
                (name.len > 12 && memcmp(name.base, "x-ratelimit-", 12) == 0);
    if (relay) {
        h2o_iovec_t n = h2o_strdup(&req->pool, name.base, name.len), v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    } else if (h2o_memis(name.base, name.len, H2O_STRLIT("x-request-id")) &&
               pgw_upstream_header(st->relay.transfer, H2O_STRLIT("request-id")).base == NULL) {
        h2o_iovec_t v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("request-id"), 0, NULL, v.base, v.len);
    }
}

/*
 * The error type of an Anthropic-shaped error (`{"type":"error","error":{"type":"...","message":"..."}}`), copied into
 * `type`; 0 when the JSON is anything else.
 */
static int anthropic_error_type(const char *json, size_t len, char *type, size_t typesz)
{
    char *text;
    if (len == 0 || len > MAX_ERROR_BODY || (text = malloc(len + 1)) == NULL)
        return 0;
    memcpy(text, json, len);
    text[len] = '\0';
    yajl_val root = yajl_tree_parse(text, NULL, 0);
    free(text);
    static const char *type_path[] = {"type", NULL}, *etype_path[] = {"error", "type", NULL},
                      *emsg_path[] = {"error", "message", NULL};
    const char *t = YAJL_GET_STRING(yajl_tree_get(root, type_path, yajl_t_string)),
               *et = YAJL_GET_STRING(yajl_tree_get(root, etype_path, yajl_t_string));
    int ok = t != NULL && strcmp(t, "error") == 0 && et != NULL && et[0] != '\0' &&
             yajl_tree_get(root, emsg_path, yajl_t_string) != NULL;
    if (ok)
        snprintf(type, typesz, "%s", et);
    yajl_tree_free(root);
    return ok;
}

/* Sends `body` as the whole response with `status`, the route's key redacted; the content type is JSON. */
static void respond_json(passthrough_t *st, int status, h2o_buffer_t **body)
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

static void on_stop_grace(pgw_relay_t *rl)
{
    /* Poe sent message_stop but has not ended the transfer: the answer is whole, and the client need not wait */
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
    passthrough_t *st = pgw_upstream_data(t);
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
 * is checked and its bytes are moved to `pending`, and a stop is noted for on_body to act on.
 */
static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    passthrough_t *st = ctx;
    pgw_relay_t *rl = &st->relay;
    size_t end = pgw_sse_reader_event_end(&st->sse);
    h2o_iovec_t raw1 = h2o_iovec_init(st->held->bytes, st->held->size),
                raw2 = h2o_iovec_init(st->chunk + st->chunk_done, end - st->chunk_done);
    st->held->size = 0;
    st->chunk_done = end;

    if (st->end != END_NONE)
        return -1;
    /* every event of Anthropic's carries one JSON object, and a client's SDK parses each: one that would break there
     * ends the stream here instead (the JSON check of request bodies, a few instructions a byte) */
    pgw_reqbody_t info;
    char err[128];
    if (pgw_reqbody_inspect(data.base, data.len, &info, err, sizeof(err)) != 0) {
        st->end = END_UNUSABLE;
        st->why = "an event whose data is not a JSON object";
        return -1;
    }
    if (h2o_memis(event.base, event.len, H2O_STRLIT("error"))) {
        st->end = END_POE_ERROR;
        if (!st->seen_start && !rl->started) {
            pgw_buf_append(&st->first_error, data.base, data.len);
            return -1;
        }
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("ping"))) {
        if (!rl->started)
            return 0; /* nothing to keep alive yet */
    } else if (!st->seen_start) {
        if (!h2o_memis(event.base, event.len, H2O_STRLIT("message_start"))) {
            st->end = END_UNUSABLE;
            st->why = "an event before message_start";
            return -1;
        }
        st->seen_start = 1;
        pgw_usage_note_event(&rl->r->usage, data.base, data.len);
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("message_delta"))) {
        pgw_usage_note_event(&rl->r->usage, data.base, data.len);
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("message_stop"))) {
        st->end = END_STOP;
    }
    /* relay the event's own bytes, with the route's key redacted */
    size_t at = rl->pending->size;
    pgw_buf_append(&rl->pending, raw1.base, raw1.len);
    pgw_buf_append(&rl->pending, raw2.base, raw2.len);
    rl->pending->size = at + pgw_redact_bytes(rl->pending->bytes + at, rl->pending->size - at, rl->route->api_key);
    return st->end == END_NONE ? 0 : -1;
}

/* After a feed: act on how the stream stands. May end the request: the caller's last use of `st`. */
static void after_events(passthrough_t *st)
{
    pgw_relay_t *rl = &st->relay;
    char type[64];

    switch (st->end) {
    case END_NONE:
        if (!rl->started && st->seen_start) {
            pgw_relay_stop_timer(rl); /* the commit wait */
            pgw_relay_start_stream(rl, can_ping);
        }
        if (rl->started)
            pgw_relay_send(rl);
        break;
    case END_STOP:
        if (!rl->started)
            pgw_relay_start_stream(rl, can_ping);
        pgw_relay_send(rl);
        /* the transfer's end completes the response; a transfer that lingers is not waited for long */
        pgw_relay_start_timer(rl, STOP_GRACE_MS, on_stop_grace);
        break;
    case END_POE_ERROR:
        pgw_log_warn(MODULE_NAME, "route %s: Poe ended the stream with an error event", rl->route->model_name);
        pgw_relay_stop_upstream(rl);
        if (!rl->started && !st->seen_start) {
            /* nothing was started: the error becomes the response, with the status its type implies */
            int status = anthropic_error_type(st->first_error->bytes, st->first_error->size, type, sizeof(type))
                             ? pgw_error_status(type)
                             : 502;
            if (pgw_relay_hand_off(rl, status))
                return;
            rl->r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
            respond_json(st, status, &st->first_error);
        } else {
            if (!rl->started) /* message_start came in the same read */
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
    passthrough_t *st = pgw_upstream_data(t);
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
        return 0; /* after message_stop: nothing more is relayed */
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

/* The usage of a whole message, from the last "usage" key of its tail. */
static void note_whole_usage(passthrough_t *st)
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

/* An error status from Poe, its body held: byte for byte when Anthropic-shaped, else the shared answer
 * (src/upstream/upstream_errors.c). `t` is the ending transfer, for its headers. */
static void respond_error(passthrough_t *st, pgw_upstream_transfer_t *t)
{
    pgw_relay_t *rl = &st->relay;
    pgw_upstream_failure_t f;
    char type[64];

    if (pgw_relay_hand_off(rl, st->status))
        return;
    rl->r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
    int own = pgw_upstream_error_answer(rl->r->req, rl->route, t, st->status, st->held->bytes, st->held->size, &f);
    /* Poe's own Anthropic error, whole, goes as it came: Claude Code's retry logic reads Poe's wording */
    if (!own && !st->truncated && anthropic_error_type(st->held->bytes, st->held->size, type, sizeof(type))) {
        respond_json(st, st->status, &st->held);
        return;
    }
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, "%s", f.message);
}

/* A whole answer has arrived: sent if it is one complete JSON object, else a 502. */
static void respond_whole(passthrough_t *st)
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
    note_whole_usage(st);
    respond_json(st, st->status, &st->held);
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    passthrough_t *st = pgw_upstream_data(t);
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
    if (err != PGW_UPSTREAM_OK && st->end != END_STOP) {
        pgw_log_warn(MODULE_NAME, "route %s: the upstream response broke off: %s", route, errstr);
        pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, stalled ? 504 : 502, stalled ? PGW_ERR_TIMEOUT : PGW_ERR_API,
                       "route %s: the %s from Poe broke off: %s", route, st->kind == BODY_STREAM ? "stream" : "answer", errstr);
        return;
    }
    if (st->kind == BODY_WHOLE) {
        respond_whole(st);
        return;
    }
    if (st->end == END_STOP) {
        pgw_relay_stop_upstream(rl); /* the grace timer */
        pgw_relay_complete(rl);
        return;
    }
    pgw_log_warn(MODULE_NAME, "route %s: Poe's stream ended before message_stop", route);
    pgw_relay_fail(rl, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "route %s: Poe's stream ended before the answer was complete "
                   "(no message_stop)", route);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

/*
 * Appends every request header whose name begins with "anthropic-", in the order sent, name and value as they are. A
 * name that is not a plain token, or a value holding CR, LF or NUL, could not travel as one header line and is left
 * out (libh2o refuses such requests before this; this is the last guard before curl's header list).
 */
static struct curl_slist *add_anthropic_headers(struct curl_slist *list, h2o_req_t *req)
{
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        char name[128];
        if (h->name->len <= sizeof("anthropic-") - 1 || h->name->len >= sizeof(name) ||
            strncasecmp(h->name->base, "anthropic-", sizeof("anthropic-") - 1) != 0)
            continue;
        size_t j = 0;
        for (; j != h->name->len; ++j) {
            char c = h->name->base[j];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                break;
            name[j] = c;
        }
        if (j != h->name->len || memchr(h->value.base, '\r', h->value.len) != NULL ||
            memchr(h->value.base, '\n', h->value.len) != NULL || memchr(h->value.base, '\0', h->value.len) != NULL)
            continue;
        name[j] = '\0';
        list = pgw_upstream_add_header(list, name, h->value);
    }
    return list;
}

void pgw_passthrough_splice_model(pgw_request_t *r, const pgw_reqbody_t *body, const char *model, size_t len, h2o_iovec_t *upbody,
                                  h2o_iovec_t more[2])
{
    h2o_req_t *req = r->req;
    *upbody = req->entity;
    more[0] = more[1] = h2o_iovec_init(NULL, 0);
    if (len == body->model_len && memcmp(model, body->model, len) == 0)
        return;
    h2o_buffer_t *quoted;
    h2o_buffer_init(&quoted, &h2o_socket_buffer_prototype);
    pgw_json_append_string(&quoted, model, len);
    more[0] = h2o_strdup(&req->pool, quoted->bytes, quoted->size);
    more[1] = h2o_iovec_init(req->entity.base + body->model_end, req->entity.len - body->model_end);
    *upbody = h2o_iovec_init(req->entity.base, body->model_offset);
    h2o_buffer_dispose(&quoted);
}

void pgw_passthrough_url(const pgw_route_t *route, const char *path, char *buf, size_t bufsz)
{
    /* LiteLLM configs often write Poe's base as https://api.poe.com/v1 for every route: do not double the version */
    size_t base_len = strlen(route->api_base);
    if (base_len >= 3 && strcmp(route->api_base + base_len - 3, "/v1") == 0)
        base_len -= 3;
    snprintf(buf, bufsz, "%.*s%s", (int)base_len, route->api_base, path);
}

void pgw_passthrough_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body,
                           const char *path)
{
    h2o_req_t *req = r->req;
    char url[2048], model[512];

    /* the body, with only the model's value replaced when the route renames it: spliced, not copied (the client's body
     * stays in h2o's buffer for the whole request anyway) */
    h2o_iovec_t upbody, more[2];
    int mlen = pgw_route_upstream_model(route, name.base, name.len, model, sizeof(model));
    if (mlen < 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: name too long for route %s", route->model_name);
        return;
    }
    pgw_passthrough_splice_model(r, body, model, mlen, &upbody, more);

    /* headers: Poe's key replaces the client's; every anthropic-* header goes through untouched (betas, and whatever
     * Anthropic adds next, are an open list: docs/request-path.md#the-pass-through-route) */
    struct curl_slist *headers = NULL;
    headers = pgw_upstream_add_header(headers, "x-api-key", h2o_iovec_init(route->api_key, strlen(route->api_key)));
    if (pgw_req_header(req, H2O_STRLIT("anthropic-version")).base == NULL)
        headers = pgw_upstream_add_header(headers, "anthropic-version", h2o_iovec_init(H2O_STRLIT("2023-06-01")));
    headers = add_anthropic_headers(headers, req);
    headers = pgw_upstream_add_route_headers(headers, route);
    pgw_passthrough_url(route, path, url, sizeof(url));

    passthrough_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), on_dispose);
    memset(st, 0, sizeof(*st));
    pgw_relay_init(&st->relay, r, route);
    pgw_sse_reader_init(&st->sse, MAX_SSE_EVENT);
    h2o_buffer_init(&st->held, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&st->first_error, &h2o_socket_buffer_prototype);
    st->client_stream = body->stream;
    pgw_upstream_request_t upreq = {url, "POST", upbody, headers, route->timeout, route->stream_timeout, route->max_retries,
                                    route->ssl_verify, route->h2c, NULL, {more[0], more[1]}};
    st->relay.transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, st);
}
