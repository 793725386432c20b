/* poe-gateway: MIT licence. `anthropic/` routes: the request goes to Poe's /v1/messages as it is, but for the key and
 * the model name; the answer comes back byte for byte as it arrives.
 *
 * Flow: pgw_passthrough_start builds the upstream request (body with only `model` rewritten, headers from an allowlist
 * of what Poe needs) and starts a transfer. on_head relays status and selected headers and starts the response;
 * on_body appends to `pending` and sends when nothing is in flight (h2o allows one send at a time; `proceed` sends the
 * rest, as h2o's proxy does). Past PENDING_HIGH_WATER the transfer is paused until the client catches up. Event
 * streams are also fed to an SSE reader, after the bytes are queued, to note usage and to know where an event ends:
 * a `ping` is inserted only between events, after PING_INTERVAL_MS of upstream silence, and an upstream failure
 * mid-stream becomes one `error` event before the end.
 */

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "errors.h"
#include "json.h"
#include "log.h"
#include "passthrough.h"
#include "sse.h"
#include "upstream.h"
#include "usage.h"

#define MODULE_NAME "passthrough"
#define PENDING_HIGH_WATER (1024 * 1024)
#define PING_INTERVAL_MS 15000
#define MAX_SSE_EVENT (16 * 1024 * 1024)
#define HANGUP_POLL_MS 250

/* The request's timers; freed in their close callbacks, which may run after the request pool is gone. */
struct timers {
    uv_timer_t ping;  /* event streams: a ping after upstream silence */
    uv_timer_t watch; /* HTTP/1 clients: polls for a hang-up that h2o 2.2.5 would not see */
    struct st_passthrough_t *owner; /* NULL once the request is gone */
    int open;
};

typedef struct st_passthrough_t {
    h2o_generator_t super;
    pgw_request_t *r;
    const pgw_route_t *route;
    pgw_upstream_transfer_t *transfer; /* NULL once completed or cancelled */
    h2o_buffer_t *pending;             /* received, not yet handed to h2o */
    h2o_doublebuffer_t sending;        /* handed to h2o, awaiting proceed */
    int started;                       /* the response head went to the client */
    int is_sse;
    int upstream_done;
    int abort_after_pending; /* end the response abruptly once pending is sent (a broken non-stream body) */
    int final_sent;
    int paused;
    int resuming; /* inside pgw_upstream_resume: do_send waits */
    pgw_sse_reader_t sse;
    pgw_usage_parser_t json_usage;
    struct timers *timers;
    uint64_t last_upstream_byte;
} passthrough_t;

/*
 * Hands what is pending to h2o when nothing is in flight. h2o may finish (and dispose of) the request inside h2o_send,
 * so every caller makes this its last use of `st`.
 */
static void do_send(passthrough_t *st)
{
    if (st->resuming)
        return; /* pgw_upstream_resume is running: on_proceed sends when it returns */
    if (st->final_sent || st->sending.bytes_inflight != 0)
        return;
    h2o_iovec_t buf = h2o_doublebuffer_prepare(&st->sending, &st->pending, SIZE_MAX);
    int last = st->upstream_done && st->pending->size == 0;
    if (buf.len == 0 && !last)
        return;
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (last) {
        st->final_sent = 1;
        state = st->abort_after_pending ? H2O_SEND_STATE_ERROR : H2O_SEND_STATE_FINAL;
    }
    h2o_send(st->r->req, &buf, buf.len != 0 ? 1 : 0, state);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    passthrough_t *st = (passthrough_t *)generator;
    h2o_doublebuffer_consume(&st->sending);
    if (st->paused && st->transfer != NULL && st->pending->size < PENDING_HIGH_WATER / 2) {
        /* the upstream may deliver bytes, or even complete, inside pgw_upstream_resume: queue them, send after */
        st->paused = 0;
        st->resuming = 1;
        pgw_upstream_resume(st->transfer);
        st->resuming = 0;
    }
    do_send(st);
}

static void stop_upstream(passthrough_t *st)
{
    if (st->transfer != NULL) {
        pgw_upstream_cancel(st->transfer);
        st->transfer = NULL;
    }
    uv_timer_stop(&st->timers->ping);
    uv_timer_stop(&st->timers->watch);
}

/* The client went away: nothing more is sent, and Poe's stream is reset at once. */
static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    passthrough_t *st = (passthrough_t *)generator;
    stop_upstream(st);
}

static void on_timer_close(uv_handle_t *handle)
{
    struct timers *timers = handle->data;
    if (--timers->open == 0)
        free(timers);
}

static void on_dispose(void *p)
{
    passthrough_t *st = p;
    stop_upstream(st);
    st->timers->owner = NULL;
    uv_close((uv_handle_t *)&st->timers->ping, on_timer_close);
    uv_close((uv_handle_t *)&st->timers->watch, on_timer_close);
    pgw_sse_reader_dispose(&st->sse);
    pgw_usage_parser_dispose(&st->json_usage);
    h2o_buffer_dispose(&st->pending);
    h2o_doublebuffer_dispose(&st->sending);
}

static void on_ping(uv_timer_t *timer)
{
    struct timers *timers = timer->data;
    passthrough_t *st = timers->owner;
    uint64_t now = uv_now(timer->loop), idle = now - st->last_upstream_byte;
    if (idle < PING_INTERVAL_MS) {
        uv_timer_start(timer, on_ping, PING_INTERVAL_MS - idle, 0);
        return;
    }
    uv_timer_start(timer, on_ping, PING_INTERVAL_MS, 0);
    if (pgw_sse_reader_at_boundary(&st->sse) && st->pending->size == 0) {
        pgw_buf_append_lit(&st->pending, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
        do_send(st);
    }
}

/*
 * HTTP/1 only: h2o 2.2.5 does not read a connection while its request is processed, so a client that hangs up while Poe
 * is silent would go unnoticed until the next write. Poll the socket for the peer's FIN instead; on a hang-up, reset
 * the upstream at once and end the response so that h2o closes the connection.
 */
static void on_watch(uv_timer_t *timer)
{
    struct timers *timers = timer->data;
    passthrough_t *st = timers->owner;
    h2o_req_t *req = st->r->req;
    h2o_socket_t *sock;

    if (st->final_sent || req->conn->callbacks->get_socket == NULL || (sock = req->conn->callbacks->get_socket(req->conn)) == NULL)
        return;
    struct pollfd pfd = {.fd = h2o_socket_get_fd(sock), .events = POLLIN | POLLRDHUP};
    if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
        return;
    pgw_log_debug(MODULE_NAME, "route %s: the client hung up; resetting the upstream request", st->route->model_name);
    stop_upstream(st);
    req->http1_is_persistent = 0;
    if (!st->started) {
        st->started = 1;
        st->super.proceed = on_proceed;
        st->super.stop = on_stop;
        h2o_start_response(req, &st->super);
    }
    if (st->sending.bytes_inflight == 0) {
        st->final_sent = 1;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
    } else {
        st->upstream_done = 1;
        st->abort_after_pending = 1;
        st->pending->size = 0;
    }
}

static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    passthrough_t *st = ctx;
    if (h2o_memis(event.base, event.len, H2O_STRLIT("message_start")) ||
        h2o_memis(event.base, event.len, H2O_STRLIT("message_delta")))
        pgw_usage_note_event(&st->r->usage, data.base, data.len);
    return 0;
}

struct header_copy {
    passthrough_t *st;
};

/* Headers relayed to the client: the content type, rate-limit and retry hints, and Poe's request id. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    passthrough_t *st = ctx;
    h2o_req_t *req = st->r->req;
    int relay = h2o_memis(name.base, name.len, H2O_STRLIT("content-type")) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("request-id")) ||
                (name.len > 20 && memcmp(name.base, "anthropic-ratelimit-", 20) == 0) ||
                (name.len > 12 && memcmp(name.base, "x-ratelimit-", 12) == 0);
    if (relay) {
        h2o_iovec_t n = h2o_strdup(&req->pool, name.base, name.len), v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    } else if (h2o_memis(name.base, name.len, H2O_STRLIT("x-request-id")) &&
               pgw_upstream_header(st->transfer, H2O_STRLIT("request-id")).base == NULL) {
        h2o_iovec_t v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("request-id"), 0, NULL, v.base, v.len);
    }
}

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    passthrough_t *st = pgw_upstream_data(t);
    h2o_req_t *req = st->r->req;

    if (status == 401) {
        /* Poe refused the gateway's own key; the client's credential was fine, and a 401 would make Claude Code ask its
         * user to log in again (translation.md §5). */
        pgw_log_error(MODULE_NAME, "Poe answered 401 for route %s: its api_key is refused", st->route->model_name);
        stop_upstream(st);
        st->final_sent = 1;
        pgw_send_error(req, 502, PGW_ERR_API, "Poe refused the API key configured for route %s%s%s", st->route->model_name,
                       st->route->api_key_env != NULL ? "; check " : "", st->route->api_key_env != NULL ? st->route->api_key_env : "");
        return;
    }

    req->res.status = status;
    req->res.reason = pgw_status_reason(status);
    pgw_upstream_foreach_header(t, copy_header, st);
    if (status == 429 && pgw_upstream_header(t, H2O_STRLIT("retry-after")).base == NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    h2o_iovec_t ctype = pgw_upstream_header(t, H2O_STRLIT("content-type"));
    st->is_sse = ctype.len >= 17 && strncasecmp(ctype.base, "text/event-stream", 17) == 0;
    if (st->is_sse) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
        st->last_upstream_byte = uv_now(&st->r->worker->loop);
        uv_timer_start(&st->timers->ping, on_ping, PING_INTERVAL_MS, 0);
    } else {
        pgw_usage_parser_init(&st->json_usage, &st->r->usage);
    }
    st->started = 1;
    st->super.proceed = on_proceed;
    st->super.stop = on_stop;
    h2o_start_response(req, &st->super);
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    passthrough_t *st = pgw_upstream_data(t);
    if (st->pending->size >= PENDING_HIGH_WATER) {
        st->paused = 1;
        return 1;
    }
    pgw_buf_append(&st->pending, bytes, len);
    if (st->is_sse) {
        st->last_upstream_byte = uv_now(&st->r->worker->loop);
        pgw_sse_reader_feed(&st->sse, bytes, len, on_sse_event, st);
    } else if (st->json_usage.handle != NULL) {
        pgw_usage_parser_feed(&st->json_usage, bytes, len);
    }
    do_send(st);
    return 0;
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    passthrough_t *st = pgw_upstream_data(t);
    h2o_req_t *req = st->r->req;
    const char *route = st->route->model_name;

    st->transfer = NULL;
    uv_timer_stop(&st->timers->ping);
    if (!st->started) {
        st->final_sent = 1;
        uv_timer_stop(&st->timers->watch);
        if (err == PGW_UPSTREAM_TIMEOUT)
            pgw_send_error(req, 504, PGW_ERR_TIMEOUT, "route %s: Poe did not answer: %s", route, errstr);
        else
            pgw_send_error(req, 502, PGW_ERR_API, "route %s: cannot reach Poe at %s: %s", route, st->route->api_base,
                           errstr != NULL ? errstr : "no response");
        return;
    }
    if (err != PGW_UPSTREAM_OK) {
        pgw_log_warn(MODULE_NAME, "route %s: the upstream response broke off: %s", route, errstr);
        if (st->is_sse) {
            char msg[512];
            int n = snprintf(msg, sizeof(msg), "route %s: the upstream stream broke off: %s", route, errstr);
            if (!pgw_sse_reader_at_boundary(&st->sse))
                pgw_buf_append_lit(&st->pending, "\n\n");
            pgw_buf_append_lit(&st->pending, "event: error\ndata: ");
            pgw_error_json(&st->pending, err == PGW_UPSTREAM_STALL ? PGW_ERR_TIMEOUT : PGW_ERR_API, msg,
                           n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
            pgw_buf_append_lit(&st->pending, "\n\n");
        } else {
            st->abort_after_pending = 1;
        }
    } else if (!st->is_sse) {
        pgw_usage_parser_finish(&st->json_usage);
    }
    st->upstream_done = 1;
    do_send(st);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

/* Adds "name: value" to the upstream header list. */
static struct curl_slist *add_header(struct curl_slist *list, const char *name, h2o_iovec_t value)
{
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%s: %.*s", name, (int)value.len, value.base);
    if (n < 0 || n >= (int)sizeof(buf))
        return list;
    return curl_slist_append(list, buf);
}

void pgw_passthrough_start(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body, const char *path)
{
    h2o_req_t *req = r->req;
    char url[2048], model[512];

    /* the body, with only the model's value replaced when the route renames it */
    h2o_iovec_t upbody = req->entity;
    int mlen = pgw_route_upstream_model(route, body->model, body->model_len, model, sizeof(model));
    if (mlen < 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: name too long for route %s", route->model_name);
        return;
    }
    if ((size_t)mlen != body->model_len || memcmp(model, body->model, mlen) != 0) {
        h2o_buffer_t *quoted;
        h2o_buffer_init(&quoted, &h2o_socket_buffer_prototype);
        pgw_json_append_string(&quoted, model, mlen);
        size_t len = body->model_offset + quoted->size + (req->entity.len - body->model_end);
        char *p = h2o_mem_alloc_pool(&req->pool, len);
        memcpy(p, req->entity.base, body->model_offset);
        memcpy(p + body->model_offset, quoted->bytes, quoted->size);
        memcpy(p + body->model_offset + quoted->size, req->entity.base + body->model_end, req->entity.len - body->model_end);
        upbody = h2o_iovec_init(p, len);
        h2o_buffer_dispose(&quoted);
    }

    /* headers: Poe's key replaces the client's; the anthropic-* pair goes through untouched (betas are an open list) */
    struct curl_slist *headers = NULL;
    headers = add_header(headers, "x-api-key", h2o_iovec_init(route->api_key, strlen(route->api_key)));
    headers = add_header(headers, "content-type", h2o_iovec_init(H2O_STRLIT("application/json")));
    h2o_iovec_t v = pgw_req_header(req, H2O_STRLIT("anthropic-version"));
    headers = add_header(headers, "anthropic-version", v.base != NULL ? v : h2o_iovec_init(H2O_STRLIT("2023-06-01")));
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("anthropic-beta"), i)) != -1;)
        headers = add_header(headers, "anthropic-beta", req->headers.entries[i].value);
    for (size_t i = 0; i != route->num_extra_headers; ++i)
        if (route->extra_headers[i].value != NULL) /* NULL: names an unset variable, warned at start */
            headers = add_header(headers, route->extra_headers[i].name,
                             h2o_iovec_init(route->extra_headers[i].value, strlen(route->extra_headers[i].value)));
    headers = curl_slist_append(headers, "Expect:"); /* no 100-continue round trip */
    headers = curl_slist_append(headers, "Accept-Encoding: identity");

    /* LiteLLM configs often write Poe's base as https://api.poe.com/v1 for every route: do not double the version */
    size_t base_len = strlen(route->api_base);
    if (base_len >= 3 && strcmp(route->api_base + base_len - 3, "/v1") == 0)
        base_len -= 3;
    snprintf(url, sizeof(url), "%.*s%s", (int)base_len, route->api_base, path);
    passthrough_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), on_dispose);
    memset(st, 0, sizeof(*st));
    st->r = r;
    st->route = route;
    h2o_buffer_init(&st->pending, &h2o_socket_buffer_prototype);
    h2o_doublebuffer_init(&st->sending, &h2o_socket_buffer_prototype);
    pgw_sse_reader_init(&st->sse, MAX_SSE_EVENT);
    st->timers = h2o_mem_alloc(sizeof(*st->timers));
    st->timers->owner = st;
    st->timers->open = 2;
    uv_timer_init(&r->worker->loop, &st->timers->ping);
    uv_timer_init(&r->worker->loop, &st->timers->watch);
    st->timers->ping.data = st->timers->watch.data = st->timers;
    if (req->version < 0x200)
        uv_timer_start(&st->timers->watch, on_watch, HANGUP_POLL_MS, HANGUP_POLL_MS);

    pgw_upstream_request_t upreq = {url, "POST", upbody, headers, route->timeout, route->stream_timeout, route->max_retries,
                                    route->ssl_verify, route->h2c};
    st->transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, st);
}
