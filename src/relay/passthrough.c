/* poe-gateway: MIT licence. `anthropic/` routes: the request goes to Poe's /v1/messages as it is, but for the key and
 * the model name; the answer comes back byte for byte, an event at a time, but only as far as it is a real answer.
 *
 * Flow: pgw_passthrough_start builds the upstream request (body with only `model` rewritten, Poe's key, every
 * `anthropic-*` header as sent) and hands it to the event relay (src/relay/event_relay.c), which relays Poe's answer:
 * a stream event by event, a whole answer checked, an error status held. This file adds Anthropic's terms:
 * - which headers the client gets (copy_header);
 * - what each event means (on_event): every event's data must be one JSON object; the answer begins with
 *   `message_start`, and content before it is unusable; `message_start` and `message_delta` carry usage; the stream is
 *   complete only once Poe's `message_stop` was relayed; Poe's `error` event is relayed and ends the stream, or, first,
 *   becomes an error status with that event's body (respond_first_error);
 * - an error status: an Anthropic-shaped error goes to the client byte for byte with Poe's status (is_own_error),
 *   anything else (an HTML page, `{"error":"boom"}`, an empty 418, a refused key, a redirect) becomes the Anthropic
 *   error that src/upstream/upstream_errors.c answers on both route kinds.
 * The route's upstream key is redacted from everything relayed: an upstream that quotes the key it was given must not
 * hand it to the client.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/usage.h"
#include "config/route_match.h"
#include "relay/event_relay.h"
#include "relay/passthrough.h"
#include "serve/reqbody.h"

#define MODULE_NAME "passthrough"

/* Headers relayed to the client: rate-limit and retry hints, and Poe's request id. An error's Retry-After is the shared
 * error answer's (pgw_upstream_error_answer), as on the translated routes. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    pgw_event_relay_t *ev = ctx;
    h2o_req_t *req = ev->relay.r->req;
    int relay = (h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) && ev->status >= 200 && ev->status <= 299) ||
                h2o_memis(name.base, name.len, H2O_STRLIT("request-id")) ||
                (name.len > 20 && memcmp(name.base, "anthropic-ratelimit-", 20) == 0) ||
                (name.len > 12 && memcmp(name.base, "x-ratelimit-", 12) == 0);
    if (relay) {
        h2o_iovec_t n = h2o_strdup(&req->pool, name.base, name.len), v = h2o_strdup(&req->pool, value.base, value.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    } else if (h2o_memis(name.base, name.len, H2O_STRLIT("x-request-id")) &&
               pgw_upstream_header(ev->relay.transfer, H2O_STRLIT("request-id")).base == NULL) {
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
    if (len == 0 || len > PGW_EVENT_RELAY_MAX_ERROR_BODY || (text = malloc(len + 1)) == NULL)
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

/* One of Anthropic's events: checked (JSON, order) and read for usage; pings before the stream starts are dropped. */
static int on_event(pgw_event_relay_t *ev, h2o_iovec_t event, h2o_iovec_t data)
{
    if (!pgw_event_relay_check_json(ev, data)) /* every event of Anthropic's carries one JSON object */
        return 0;
    if (h2o_memis(event.base, event.len, H2O_STRLIT("error"))) {
        ev->end = PGW_EVENT_RELAY_END_POE_ERROR;
        if (!ev->begun && !ev->relay.started) {
            pgw_buf_append(&ev->first_error, data.base, data.len);
            return 0;
        }
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("ping"))) {
        if (!ev->relay.started)
            return 0; /* nothing to keep alive yet */
    } else if (!ev->begun) {
        if (!h2o_memis(event.base, event.len, H2O_STRLIT("message_start"))) {
            ev->end = PGW_EVENT_RELAY_END_UNUSABLE;
            ev->why = "an event before message_start";
            return 0;
        }
        ev->begun = 1;
        pgw_usage_note_event(&ev->relay.r->usage, data.base, data.len);
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("message_delta"))) {
        pgw_usage_note_event(&ev->relay.r->usage, data.base, data.len);
    } else if (h2o_memis(event.base, event.len, H2O_STRLIT("message_stop"))) {
        ev->end = PGW_EVENT_RELAY_END_COMPLETE;
    }
    return 1;
}

/* Poe's `error` event came first: the error becomes the response, with the status its type implies. */
static void respond_first_error(pgw_event_relay_t *ev)
{
    pgw_relay_t *rl = &ev->relay;
    char type[64];

    pgw_relay_stop_upstream(rl);
    int status =
        anthropic_error_type(ev->first_error->bytes, ev->first_error->size, type, sizeof(type)) ? pgw_error_status(type) : 502;
    if (pgw_relay_hand_off(rl, status))
        return;
    rl->r->outcome = PGW_OUTCOME_UPSTREAM_ERROR;
    pgw_event_relay_respond_json(ev, status, &ev->first_error);
}

/* An error status's body that is Anthropic's error: relayed as it came, since Claude Code's retry logic reads Poe's wording. */
static int is_own_error(const char *json, size_t len)
{
    char type[64];
    return anthropic_error_type(json, len, type, sizeof(type));
}

static const pgw_event_relay_ops_t ops = {
    .module = MODULE_NAME,
    .missing = "no message_stop",
    .copy_header = copy_header,
    .on_event = on_event,
    .respond_first_error = respond_first_error,
    .is_own_error = is_own_error,
};

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

    pgw_event_relay_start(r, route, &ops, sizeof(pgw_event_relay_t), body->stream, url, upbody, more, headers);
}
