/* poe-gateway: MIT licence. `anthropic/` routes: the request goes to Poe's /v1/messages as it is, but for the key and
 * the model name; the answer comes back byte for byte as it arrives.
 *
 * Flow: pgw_passthrough_start builds the upstream request (body with only `model` rewritten, headers from an allowlist
 * of what Poe needs) and starts a transfer. on_head relays status and selected headers and starts the response;
 * on_body queues the bytes on the relay (src/relay.c: one send in flight, flow control, pings, hang-ups). Event
 * streams are also fed to an SSE reader to note usage and to know where an event ends: a `ping` is inserted only
 * between events, and an upstream failure mid-stream becomes one `error` event before the end.
 */
#include <stdio.h>
#include <string.h>
#include "errors.h"
#include "json.h"
#include "log.h"
#include "passthrough.h"
#include "relay.h"
#include "sse.h"
#include "usage.h"

#define MODULE_NAME "passthrough"
#define MAX_SSE_EVENT (16 * 1024 * 1024)

#define TAIL_KEEP (64 * 1024)
#define MAX_ERROR_BODY (64 * 1024)

typedef struct st_passthrough_t {
    pgw_relay_t relay; /* first: the generator h2o sees */
    int is_sse;
    int is_error;       /* a non-2xx answer: its body is held (bounded) and the route's key redacted before it goes */
    pgw_sse_reader_t sse;
    h2o_buffer_t *side; /* a whole answer's last bytes, where its usage is (or an error body) */
} passthrough_t;

static void on_dispose(void *p)
{
    passthrough_t *st = p;
    pgw_relay_dispose(&st->relay);
    pgw_sse_reader_dispose(&st->sse);
    h2o_buffer_dispose(&st->side);
}

static int can_ping(pgw_relay_t *rl)
{
    passthrough_t *st = (passthrough_t *)rl;
    return pgw_sse_reader_at_boundary(&st->sse);
}

static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    passthrough_t *st = ctx;
    if (h2o_memis(event.base, event.len, H2O_STRLIT("message_start")) ||
        h2o_memis(event.base, event.len, H2O_STRLIT("message_delta")))
        pgw_usage_note_event(&st->relay.r->usage, data.base, data.len);
    return 0;
}

/* Headers relayed to the client: the content type, rate-limit and retry hints, and Poe's request id. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    passthrough_t *st = ctx;
    h2o_req_t *req = st->relay.r->req;
    int relay = h2o_memis(name.base, name.len, H2O_STRLIT("content-type")) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) ||
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

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    passthrough_t *st = pgw_upstream_data(t);
    h2o_req_t *req = st->relay.r->req;
    const pgw_route_t *route = st->relay.route;

    pgw_shaper_observe(st->relay.r->bucket, status, t);
    if (status == 401) {
        /* Poe refused the gateway's own key; the client's credential was fine, and a 401 would make Claude Code ask its
         * user to log in again (translation.md §5). */
        pgw_log_error(MODULE_NAME, "Poe answered 401 for route %s: its api_key is refused", route->model_name);
        pgw_relay_stop_upstream(&st->relay);
        pgw_relay_respond_directly(&st->relay);
        pgw_send_error(req, 502, PGW_ERR_API, "Poe refused the API key configured for route %s%s%s", route->model_name,
                       route->api_key_env != NULL ? "; check " : "", route->api_key_env != NULL ? route->api_key_env : "");
        return;
    }

    req->res.status = status;
    req->res.reason = pgw_status_reason(status);
    pgw_upstream_foreach_header(t, copy_header, st);
    if (status == 429 && pgw_upstream_header(t, H2O_STRLIT("retry-after")).base == NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    h2o_iovec_t ctype = pgw_upstream_header(t, H2O_STRLIT("content-type"));
    st->is_sse = ctype.len >= 17 && strncasecmp(ctype.base, "text/event-stream", 17) == 0;
    st->is_error = status >= 400;
    if (st->is_sse && !st->is_error) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
        pgw_relay_enable_ping(&st->relay, can_ping);
    }
    pgw_relay_start(&st->relay);
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    passthrough_t *st = pgw_upstream_data(t);
    if (pgw_relay_should_pause(&st->relay))
        return 1;
    if (st->is_error) {
        if (st->side->size + len <= MAX_ERROR_BODY)
            pgw_buf_append(&st->side, bytes, len);
        return 0;
    }
    pgw_buf_append(&st->relay.pending, bytes, len);
    if (st->is_sse) {
        pgw_sse_reader_feed(&st->sse, bytes, len, on_sse_event, st);
    } else {
        /* a whole message ends with its usage: keep a tail to read it from at the end, in linear time */
        pgw_buf_append(&st->side, bytes, len);
        if (st->side->size > 2 * TAIL_KEEP)
            h2o_buffer_consume(&st->side, st->side->size - TAIL_KEEP);
    }
    pgw_relay_send(&st->relay);
    return 0;
}

/* The usage of a whole message, from the last "usage" key of its tail. */
static void note_whole_usage(passthrough_t *st)
{
    const char *tail = pgw_buf_at(st->side, 0), *at = NULL;
    size_t len = st->side->size;
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

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    passthrough_t *st = pgw_upstream_data(t);
    pgw_relay_t *rl = &st->relay;
    h2o_req_t *req = rl->r->req;
    const char *route = rl->route->model_name;

    rl->transfer = NULL; /* freed by the upstream after this returns */
    pgw_relay_stop_upstream(rl); /* only the ping timer is left to stop */
    if (!rl->started) {
        pgw_relay_respond_directly(rl);
        if (err == PGW_UPSTREAM_TIMEOUT)
            pgw_send_error(req, 504, PGW_ERR_TIMEOUT, "route %s: Poe did not answer: %s", route, errstr);
        else
            pgw_send_error(req, 502, PGW_ERR_API, "route %s: cannot reach Poe at %s: %s", route, rl->route->api_base,
                           errstr != NULL ? errstr : "no response");
        return;
    }
    if (err != PGW_UPSTREAM_OK) {
        pgw_log_warn(MODULE_NAME, "route %s: the upstream response broke off: %s", route, errstr);
        if (st->is_sse) {
            char msg[512];
            int n = snprintf(msg, sizeof(msg), "route %s: the upstream stream broke off: %s", route, errstr);
            if (!pgw_sse_reader_at_boundary(&st->sse))
                pgw_buf_append_lit(&rl->pending, "\n\n");
            pgw_buf_append_lit(&rl->pending, "event: error\ndata: ");
            pgw_error_json(&rl->pending, err == PGW_UPSTREAM_STALL ? PGW_ERR_TIMEOUT : PGW_ERR_API, msg,
                           n < (int)sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
            pgw_buf_append_lit(&rl->pending, "\n\n");
        } else {
            rl->abort = 1;
        }
    } else if (st->is_error) {
        /* an upstream that quotes the key it was given must not hand it to the client */
        char *text = h2o_mem_alloc_pool(&req->pool, st->side->size + 1);
        memcpy(text, pgw_buf_at(st->side, 0), st->side->size);
        text[st->side->size] = '\0';
        pgw_redact(text, rl->route->api_key);
        pgw_buf_append_str(&rl->pending, text);
    } else if (!st->is_sse) {
        note_whole_usage(st);
    }
    rl->done = 1;
    pgw_relay_send(rl);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

void pgw_passthrough_start(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body, const char *path)
{
    h2o_req_t *req = r->req;
    char url[2048], model[512];

    /* the body, with only the model's value replaced when the route renames it: spliced, not copied (the client's body
     * stays in h2o's buffer for the whole request anyway) */
    h2o_iovec_t upbody = req->entity, more[2] = {{NULL}};
    int mlen = pgw_route_upstream_model(route, body->model, body->model_len, model, sizeof(model));
    if (mlen < 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: name too long for route %s", route->model_name);
        return;
    }
    if ((size_t)mlen != body->model_len || memcmp(model, body->model, mlen) != 0) {
        h2o_buffer_t *quoted;
        h2o_buffer_init(&quoted, &h2o_socket_buffer_prototype);
        pgw_json_append_string(&quoted, model, mlen);
        more[0] = h2o_strdup(&req->pool, quoted->bytes, quoted->size);
        more[1] = h2o_iovec_init(req->entity.base + body->model_end, req->entity.len - body->model_end);
        upbody = h2o_iovec_init(req->entity.base, body->model_offset);
        h2o_buffer_dispose(&quoted);
    }

    /* headers: Poe's key replaces the client's; the anthropic-* pair goes through untouched (betas are an open list) */
    struct curl_slist *headers = NULL;
    headers = pgw_upstream_add_header(headers, "x-api-key", h2o_iovec_init(route->api_key, strlen(route->api_key)));
    h2o_iovec_t v = pgw_req_header(req, H2O_STRLIT("anthropic-version"));
    headers = pgw_upstream_add_header(headers, "anthropic-version", v.base != NULL ? v : h2o_iovec_init(H2O_STRLIT("2023-06-01")));
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("anthropic-beta"), i)) != -1;)
        headers = pgw_upstream_add_header(headers, "anthropic-beta", req->headers.entries[i].value);
    headers = pgw_upstream_add_route_headers(headers, route);

    /* LiteLLM configs often write Poe's base as https://api.poe.com/v1 for every route: do not double the version */
    size_t base_len = strlen(route->api_base);
    if (base_len >= 3 && strcmp(route->api_base + base_len - 3, "/v1") == 0)
        base_len -= 3;
    snprintf(url, sizeof(url), "%.*s%s", (int)base_len, route->api_base, path);

    passthrough_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), on_dispose);
    memset(st, 0, sizeof(*st));
    pgw_relay_init(&st->relay, r, route);
    pgw_sse_reader_init(&st->sse, MAX_SSE_EVENT);
    h2o_buffer_init(&st->side, &h2o_socket_buffer_prototype);
    pgw_upstream_request_t upreq = {url, "POST", upbody, headers, route->timeout, route->stream_timeout, route->max_retries,
                                    route->ssl_verify, route->h2c, NULL, {more[0], more[1]}};
    st->relay.transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, st);
}
