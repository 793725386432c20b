/* poe-gateway: MIT licence. POST /v1/chat/completions: an OpenAI-format request goes to Poe's chat/completions as it is,
 * but for the key and the model name; the answer comes back byte for byte, an event at a time, as far as it is a real
 * answer. The twin of src/relay/passthrough.c, in OpenAI's terms (docs/streams.md#the-openai-pass-through).
 *
 * Flow: pgw_openai_passthrough_start splices the route's bot into the client's body, puts Poe's key in an Authorization
 * header and hands the request to the event relay (src/relay/event_relay.c), which relays Poe's answer with
 * pgw_relay_t.openai set (errors, error events and pings in OpenAI's form): a stream event by event, a whole answer
 * checked, an error status held. This file adds OpenAI's terms:
 * - which headers the client gets (copy_header);
 * - what each chunk means (on_event): `data: [DONE]` completes the stream; every other chunk's data must be one JSON
 *   object, and the first one begins the answer (the client's 200 goes out with it); a chunk holding an `error` object
 *   is Poe's error: before the client's stream started it becomes an error status (respond_first_error), after it is
 *   relayed and ends the stream; a chunk with a finish_reason lets a clean end of transfer without `[DONE]` complete
 *   the stream, the gateway then writing the `[DONE]` (complete_unended);
 * - a whole answer holding an `error` object is mapped (respond_whole_error);
 * - an error status: an OpenAI-shaped error goes to the client byte for byte with Poe's status (is_own_error), anything
 *   else (and Poe refusing the gateway's key) becomes the answer of src/upstream/upstream_errors.c in OpenAI's shape.
 * Usage is noted from the chunk that carries it (the client asks for it with stream_options.include_usage) or from the
 * whole answer, for the access log, /metrics and /usage. The route's upstream key is redacted from everything relayed.
 */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/usage.h"
#include "config/route_match.h"
#include "relay/event_relay.h"
#include "relay/openai_passthrough.h"
#include "relay/passthrough.h"
#include "serve/reqbody.h"
#include "upstream/upstream_errors.h"

#define MODULE_NAME "openai_passthrough"

typedef struct st_openai_passthrough_t {
    pgw_event_relay_t ev; /* first: the relay state the event relay allocates */
    int seen_finish;      /* a chunk carried a finish_reason */
} openai_passthrough_t;

/* Headers relayed to the client: rate-limit and retry hints, and Poe's request id. */
static void copy_header(void *ctx, h2o_iovec_t name, h2o_iovec_t value)
{
    pgw_event_relay_t *ev = ctx;
    h2o_req_t *req = ev->relay.r->req;
    int relay = (h2o_memis(name.base, name.len, H2O_STRLIT("retry-after")) && ev->status >= 200 && ev->status <= 299) ||
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
    if (len == 0 || len > PGW_EVENT_RELAY_MAX_ERROR_BODY || memmem(json, len, "\"error\"", 7) == NULL ||
        (text = malloc(len + 1)) == NULL)
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

/* Poe's error object inside a 2xx (a stream's first chunk, or a whole answer): mapped to a status and sent. */
static void respond_embedded_error(pgw_event_relay_t *ev, const char *json, size_t len)
{
    pgw_upstream_failure_t f;
    pgw_map_upstream_error(ev->status, json, len, ev->relay.route->model_name, ev->relay.route->api_key, &f);
    pgw_relay_fail(&ev->relay, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, "%s", f.message);
}

/* One chunk (or `[DONE]`): checked to be JSON, read for an error, usage and a finish_reason. */
static int on_event(pgw_event_relay_t *ev, h2o_iovec_t event, h2o_iovec_t data)
{
    openai_passthrough_t *st = (openai_passthrough_t *)ev;

    if (h2o_memis(data.base, data.len, H2O_STRLIT("[DONE]"))) {
        ev->end = PGW_EVENT_RELAY_END_COMPLETE;
        return 1;
    }
    if (!pgw_event_relay_check_json(ev, data)) /* every chunk is one JSON object */
        return 0;
    if (has_error_object(data.base, data.len, 0)) {
        ev->end = PGW_EVENT_RELAY_END_POE_ERROR;
        if (!ev->begun && !ev->relay.started) { /* after the commit wait the client has its 200: the chunk is relayed */
            pgw_buf_append(&ev->first_error, data.base, data.len);
            return 0;
        }
    } else {
        pgw_usage_note_event(&ev->relay.r->usage, data.base, data.len);
        st->seen_finish |= has_finish_reason(data.base, data.len);
    }
    ev->begun = 1;
    return 1;
}

/* Poe's error chunk came first: the error becomes the response, with the status its code or type implies. */
static void respond_first_error(pgw_event_relay_t *ev)
{
    respond_embedded_error(ev, ev->first_error->bytes, ev->first_error->size);
}

/* An error status's body that is OpenAI's error: relayed as it came, since the client's SDK reads Poe's wording (which
 * parameter it refused). */
static int is_own_error(const char *json, size_t len)
{
    return has_error_object(json, len, 1);
}

/* A whole answer that is Poe's error object: mapped. */
static int respond_whole_error(pgw_event_relay_t *ev)
{
    if (!has_error_object(ev->held->bytes, ev->held->size, 0))
        return 0;
    respond_embedded_error(ev, ev->held->bytes, ev->held->size);
    return 1;
}

/* The answer ended with its finish_reason and a clean end of transfer: complete, though Poe wrote no [DONE]. */
static int complete_unended(pgw_event_relay_t *ev)
{
    if (!((openai_passthrough_t *)ev)->seen_finish || !pgw_sse_reader_at_boundary(&ev->sse))
        return 0;
    pgw_buf_append_lit(&ev->relay.pending, "data: [DONE]\n\n");
    return 1;
}

static const pgw_event_relay_ops_t ops = {
    .module = MODULE_NAME,
    .openai = 1,
    .missing = "no finish_reason, no [DONE]",
    .copy_header = copy_header,
    .on_event = on_event,
    .respond_first_error = respond_first_error,
    .is_own_error = is_own_error,
    .respond_whole_error = respond_whole_error,
    .complete_unended = complete_unended,
};

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

    pgw_event_relay_start(r, route, &ops, sizeof(openai_passthrough_t), body->stream, url, upbody, more, headers);
}
