/* poe-gateway: MIT licence. `openai/` routes: an Anthropic request translated to Poe's chat/completions, and the answer
 * translated back, whole or as it streams.
 *
 * The request is translated before anything is sent (a bad body is a 400 without an upstream call). Upstream errors
 * before a 2xx are mapped (docs/errors.md#upstream-errors) and answered as JSON. A 2xx stream is cut into events by the SSE
 * reader and fed to the stream translator; the client's 200 and SSE headers go out only at the translator's commit
 * (docs/streams.md#commit): its first usable chunk, or COMMIT_WAIT_MS without one. After `finish_reason` without usage,
 * a GRACE_MS timer finalises. The relay (src/relay/relay.c) does the sending, flow control, pings and hang-up detection.
 *
 * A server tool the bot cannot run (docs/mapping.md#server-tools) is refused with a 400 that names the bot and the
 * models whose routes can run it, before anything is sent: never dropped unsaid.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>
#include "upstream/catalog.h"
#include "common/errors.h"
#include "serve/generation.h"
#include "common/json.h"
#include "common/log.h"
#include "relay/relay.h"
#include "config/route_match.h"
#include "serve/shaper.h"
#include "relay/sse.h"
#include "translate/translate.h"
#include "translate/translate_job.h"
#include "translate/translate_knobs.h"
#include "relay/translate_route.h"
#include "serve/worker.h"

#define MODULE_NAME "translate_route"
#define COMMIT_WAIT_MS 5000
#define GRACE_MS 2000
#define MAX_ERROR_BODY (64 * 1024)
#define MAX_WHOLE_BODY (64 * 1024 * 1024)
#define MAX_SSE_EVENT (16 * 1024 * 1024)

typedef struct st_translate_t {
    pgw_relay_t relay; /* first: the generator h2o sees */
    pgw_catalog_t *catalog;
    h2o_buffer_t *upbody; /* the translated request (the transfer reads it until it ends) */
    pgw_translated_t translated;
    pgw_response_opts_t ropts;
    char msg_id[32];
    char model[256];      /* the client's model name */
    char route_name[128];
    char bot[128];        /* the Poe bot, as sent upstream */
    int bot_known;        /* the bot is in the catalog loaded now */
    int status;           /* upstream status, 0 before the head */
    int is_sse;
    h2o_buffer_t *body;   /* a whole response, or an error body */
    pgw_sse_reader_t sse;
    pgw_stream_translator_t *stream;
    pgw_stream_status_t terminal; /* what the translator last said when it stopped taking events */
    int stream_done;
    pgw_translate_job_t *job;                /* the request's translation, while it runs on the thread pool */
    void (*on_translated)(struct st_translate_t *st); /* what comes once the request is translated */
} translate_t;

static void on_dispose(void *p)
{
    translate_t *st = p;
    if (st->job != NULL)
        pgw_translate_job_cancel(st->job);
    pgw_relay_dispose(&st->relay);
    pgw_catalog_release(st->catalog);
    h2o_buffer_dispose(&st->upbody);
    h2o_buffer_dispose(&st->body);
    pgw_sse_reader_dispose(&st->sse);
    if (st->stream != NULL)
        pgw_stream_translator_destroy(st->stream);
    pgw_translated_dispose(&st->translated);
}

static void make_msg_id(char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[12];
    RAND_bytes(rnd, sizeof(rnd));
    memcpy(out, "msg_", 4);
    for (size_t i = 0; i != sizeof(rnd); ++i) {
        out[4 + i * 2] = hex[rnd[i] >> 4];
        out[5 + i * 2] = hex[rnd[i] & 15];
    }
    out[4 + sizeof(rnd) * 2] = '\0';
}

static void add_request_id(translate_t *st)
{
    h2o_req_t *req = st->relay.r->req;
    h2o_iovec_t id = st->relay.transfer != NULL ? pgw_upstream_header(st->relay.transfer, H2O_STRLIT("x-request-id"))
                                                : h2o_iovec_init(NULL, 0);
    if (id.base != NULL) {
        h2o_iovec_t v = h2o_strdup(&req->pool, id.base, id.len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("request-id"), 0, NULL, v.base, v.len);
    }
}

/* Answers with a JSON error instead of the relayed response (before anything was started). */
static void fail(translate_t *st, pgw_outcome_t outcome, int status, const char *type, const char *message)
{
    pgw_relay_fail(&st->relay, outcome, status, type, "%s", message);
}

static void note_usage(translate_t *st)
{
    pgw_usage_t *u = &st->relay.r->usage;
    pgw_stream_translator_usage(st->stream, &u->input_tokens, &u->output_tokens, &u->cache_read_input_tokens,
                                &u->cache_creation_input_tokens);
}

static void on_grace(pgw_relay_t *rl);

static int can_ping(pgw_relay_t *rl)
{
    return 1; /* the translator writes whole frames only: the stream is always between events */
}

/*
 * After the translator produced output (or finished): start the response at the commit, send, and account for the end.
 * h2o may finish the request inside: callers make this their last use of `st`.
 */
static void after_translate(translate_t *st, pgw_stream_status_t status)
{
    pgw_relay_t *rl = &st->relay;
    if (status == PGW_STREAM_FAILED_EARLY) {
        const pgw_upstream_failure_t *f = pgw_stream_translator_failure(st->stream);
        if (f->no_retry)
            pgw_error_no_retry(rl->r->req);
        fail(st, pgw_stream_translator_outcome(st->stream), f->status, f->type, f->message);
        return;
    }
    if (!rl->started && pgw_stream_translator_committed(st->stream)) {
        pgw_relay_stop_timer(rl); /* the commit wait */
        add_request_id(st);
        pgw_relay_start_stream(rl, can_ping);
    }
    if (status == PGW_STREAM_DONE && !st->stream_done) {
        st->stream_done = 1;
        note_usage(st);
        if (pgw_stream_translator_wants_buffer_tools(st->stream)) {
            /* a tool call arrived out of order: from now on this route's tool calls are sent whole
             * (docs/streams.md#tool-calls-in-a-stream) */
            pgw_log_warn(MODULE_NAME, "route %s: a tool call's arguments arrived after it closed; buffering tool calls from now on",
                         st->route_name);
            atomic_store(rl->r->gen->route_buffer_tools + (rl->route - rl->r->conf->routes), 1);
        }
        pgw_relay_stop_upstream(rl); /* nothing more is needed from Poe */
        /* the translator wrote the last event: message_stop, or the one error event */
        pgw_relay_end(rl, pgw_stream_translator_outcome(st->stream));
        return;
    } else if (status == PGW_STREAM_CONTINUE && pgw_stream_translator_awaiting_usage(st->stream)) {
        pgw_relay_start_timer(rl, GRACE_MS, on_grace);
    }
    if (rl->started)
        pgw_relay_send(rl);
}

static void on_grace(pgw_relay_t *rl)
{
    translate_t *st = (translate_t *)rl;
    after_translate(st, pgw_stream_translator_finish(st->stream, 1, NULL, NULL, &rl->pending));
}

static void on_commit_wait(pgw_relay_t *rl)
{
    translate_t *st = (translate_t *)rl;
    pgw_stream_translator_commit(st->stream, &rl->pending);
    after_translate(st, PGW_STREAM_CONTINUE);
}

/* Only translates: sending waits until the SSE reader has returned (sending may end the request and free the reader). */
static int on_sse_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    translate_t *st = ctx;
    if (st->terminal != PGW_STREAM_CONTINUE)
        return -1;
    st->terminal = pgw_stream_translator_feed(st->stream, data.base, data.len, &st->relay.pending);
    return st->terminal == PGW_STREAM_CONTINUE ? 0 : -1;
}

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    translate_t *st = pgw_upstream_data(t);
    st->status = status;
    pgw_shaper_observe(st->relay.r->bucket, status, t);
    if (status < 200 || status > 299)
        return; /* the error body is collected, then mapped in on_complete */
    h2o_iovec_t ctype = pgw_upstream_header(t, H2O_STRLIT("content-type"));
    st->is_sse = ctype.len >= 17 && strncasecmp(ctype.base, "text/event-stream", 17) == 0;
    if (st->translated.stream && st->is_sse) {
        st->stream = pgw_stream_translator_create(&st->ropts);
        pgw_relay_start_timer(&st->relay, COMMIT_WAIT_MS, on_commit_wait);
    }
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    translate_t *st = pgw_upstream_data(t);
    pgw_relay_t *rl = &st->relay;

    /* the translated request is not needed once Poe answers: free it rather than hold it for the whole stream */
    if (st->upbody->size != 0 && pgw_upstream_release_body(t)) {
        h2o_buffer_dispose(&st->upbody);
        h2o_buffer_init(&st->upbody, &h2o_socket_buffer_prototype);
    }

    if (st->stream == NULL) {
        size_t cap = st->status >= 200 && st->status <= 299 ? MAX_WHOLE_BODY : MAX_ERROR_BODY;
        if (st->body->size + len <= cap)
            pgw_buf_append(&st->body, bytes, len);
        return 0;
    }
    if (st->terminal != PGW_STREAM_CONTINUE)
        return 0; /* the client's stream is complete: the rest is dropped */
    if (pgw_relay_should_pause(rl))
        return 1;
    if (pgw_stream_translator_awaiting_usage(st->stream))
        pgw_relay_stop_timer(rl); /* more is coming: the grace timer restarts if the wait goes on */
    size_t at = rl->pending->size;
    pgw_sse_reader_feed(&st->sse, bytes, len, on_sse_event, st);
    /* whatever Poe echoes, its key does not reach the client (its error messages are redacted where they are mapped) */
    rl->pending->size = at + pgw_redact_bytes(rl->pending->bytes + at, rl->pending->size - at, rl->route->api_key);
    after_translate(st, st->terminal);
    return 0;
}

static void respond_whole(translate_t *st)
{
    pgw_upstream_failure_t failure;
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    if (pgw_translate_response(st->body->bytes, st->body->size, &st->ropts, &out, &failure) != 0) {
        h2o_buffer_dispose(&out);
        if (failure.no_retry)
            pgw_error_no_retry(st->relay.r->req);
        fail(st, PGW_OUTCOME_UPSTREAM_ERROR, failure.status, failure.type, failure.message);
        return;
    }
    pgw_relay_t *rl = &st->relay;
    h2o_req_t *req = rl->r->req;
    pgw_usage_note_event(&rl->r->usage, out->bytes, out->size);
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    pgw_buf_append(&rl->pending, out->bytes, out->size);
    h2o_buffer_dispose(&out);
    pgw_relay_start(rl);
    pgw_relay_complete(rl);
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    translate_t *st = pgw_upstream_data(t);
    pgw_relay_t *rl = &st->relay;
    char msg[600];

    if (st->status >= 200 && st->status <= 299 && err == PGW_UPSTREAM_OK)
        add_request_id(st);
    rl->transfer = NULL; /* freed by the upstream after this returns */
    if (rl->final_sent)
        return;

    if (st->status != 0 && (st->status < 200 || st->status > 299)) {
        pgw_upstream_failure_t f;
        pgw_upstream_error_answer(rl->r->req, rl->route, t, st->status, st->body->bytes, st->body->size, &f);
        fail(st, PGW_OUTCOME_UPSTREAM_ERROR, f.status, f.type, f.message);
        return;
    }
    if (st->status == 0) {
        snprintf(msg, sizeof(msg), "route %s: %s Poe at %s: %s", st->route_name,
                 err == PGW_UPSTREAM_TIMEOUT ? "no answer from" : "cannot reach", rl->route->api_base,
                 errstr != NULL ? errstr : "no response");
        fail(st, PGW_OUTCOME_UPSTREAM_CUT, err == PGW_UPSTREAM_TIMEOUT ? 504 : 502,
             err == PGW_UPSTREAM_TIMEOUT ? PGW_ERR_TIMEOUT : PGW_ERR_API, msg);
        return;
    }
    if (st->stream == NULL) {
        if (err != PGW_UPSTREAM_OK) {
            snprintf(msg, sizeof(msg), "route %s: the response from Poe broke off: %s", st->route_name, errstr);
            fail(st, PGW_OUTCOME_UPSTREAM_CUT, err == PGW_UPSTREAM_STALL ? 504 : 502,
                 err == PGW_UPSTREAM_STALL ? PGW_ERR_TIMEOUT : PGW_ERR_API, msg);
        } else if (st->translated.stream) {
            fail(st, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, "Poe answered a streaming request without a stream (content-type is not "
                                       "text/event-stream)");
        } else {
            respond_whole(st);
        }
        return;
    }
    if (st->terminal != PGW_STREAM_CONTINUE)
        return; /* handled when the translator said so */
    if (err != PGW_UPSTREAM_OK) {
        snprintf(msg, sizeof(msg), "route %s: the stream from Poe broke off: %s", st->route_name, errstr);
        pgw_log_warn(MODULE_NAME, "%s", msg);
    }
    pgw_stream_status_t status = pgw_stream_translator_finish(st->stream, err == PGW_UPSTREAM_OK,
                                                              err == PGW_UPSTREAM_STALL ? PGW_ERR_TIMEOUT : PGW_ERR_API,
                                                              err == PGW_UPSTREAM_OK ? NULL : msg, &rl->pending);
    if (!pgw_stream_translator_committed(st->stream) && status != PGW_STREAM_FAILED_EARLY) {
        /* nothing usable ever arrived: an error response, not an empty stream */
        snprintf(msg, sizeof(msg), "route %s: Poe ended the stream without an answer%s%s", st->route_name,
                 errstr != NULL ? ": " : "", errstr != NULL ? errstr : "");
        fail(st, PGW_OUTCOME_UPSTREAM_CUT, 502, PGW_ERR_API, msg);
        return;
    }
    after_translate(st, status == PGW_STREAM_CONTINUE ? PGW_STREAM_DONE : status);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

static void on_translate_done(void *ctx, int ret, const char *err)
{
    translate_t *st = ctx;
    if (st->relay.started)
        return; /* an HTTP/1 client hung up meanwhile: the relay has ended the response */
    if (ret != 0) {
        pgw_relay_respond_directly(&st->relay);
        pgw_send_error(st->relay.r->req, 400, PGW_ERR_INVALID_REQUEST, "%s", err);
        return;
    }
    st->on_translated(st);
}

/*
 * Common set-up: the catalog entry, then the translated body (at once, or from the thread pool for a large body: see
 * src/translate/translate_job.c), then `next`. Answers 400 instead when the body does not translate.
 */
static void prepare(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body,
                    void (*next)(translate_t *st))
{
    h2o_req_t *req = r->req;
    char upstream_model[512];

    translate_t *st = h2o_mem_alloc_shared(&req->pool, sizeof(*st), on_dispose);
    memset(st, 0, sizeof(*st));
    pgw_relay_init(&st->relay, r, route);
    h2o_buffer_init(&st->upbody, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&st->body, &h2o_socket_buffer_prototype);
    pgw_sse_reader_init(&st->sse, MAX_SSE_EVENT);
    snprintf(st->model, sizeof(st->model), "%s", body->model);
    snprintf(st->route_name, sizeof(st->route_name), "%s", route->model_name);

    if (pgw_route_upstream_model(route, name.base, name.len, upstream_model, sizeof(upstream_model)) < 0) {
        pgw_relay_respond_directly(&st->relay);
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: name too long for route %s", route->model_name);
        return;
    }
    /* Poe matches bot names loosely but the catalog id is canonical (docs/peers.md#poes-catalog) */
    st->catalog = pgw_catalogs_get(route->api_base);
    const pgw_bot_t *bot = st->catalog != NULL ? pgw_catalog_find(st->catalog, upstream_model, strlen(upstream_model)) : NULL;
    pgw_translate_opts_t opts = {bot != NULL ? bot->id : upstream_model, bot, route->extra_body_members, route->echo_reasoning,
                                 route->minimal_schema};
    snprintf(st->bot, sizeof(st->bot), "%s", opts.upstream_model);
    st->bot_known = bot != NULL;
    st->on_translated = next;
    pgw_translate_job_start(&st->job, req->conn->ctx->loop, req->entity.base, req->entity.len, &opts, st->catalog, &st->upbody,
                            &st->translated, on_translate_done, st);
}

static void count_tokens_translated(translate_t *st)
{
    char json[64];
    int n = snprintf(json, sizeof(json), "{\"input_tokens\":%lld}", st->translated.input_tokens);
    pgw_relay_respond_directly(&st->relay);
    pgw_send_body(st->relay.r->req, 200, "application/json", json, n);
}

void pgw_translate_route_count_tokens(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body)
{
    prepare(r, route, name, body, count_tokens_translated);
}

/*
 * The client-facing names of the routes that can run a server tool, ", "-separated into `buf`: every anthropic/ route
 * (server tools pass through to Poe's /v1/messages as they are), and for web search each openai/ route whose bot
 * declares the web_search knob or whose extra_body sets it (a route whose bot is a wildcard cannot be told).
 */
static void capable_routes(const pgw_config_t *conf, int web_search, char *buf, size_t bufsz)
{
    size_t len = 0;

    buf[0] = '\0';
    for (size_t i = 0; i != conf->num_routes && len < bufsz; ++i) {
        const pgw_route_t *route = &conf->routes[i];
        int can = route->kind == PGW_ROUTE_ANTHROPIC;
        if (!can && web_search && strchr(route->upstream_model, '*') == NULL) {
            pgw_catalog_t *catalog = pgw_catalogs_get(route->api_base);
            const pgw_bot_t *bot =
                catalog != NULL ? pgw_catalog_find(catalog, route->upstream_model, strlen(route->upstream_model)) : NULL;
            can = pgw_knobs_web_search(bot, route->extra_body_members);
            if (catalog != NULL)
                pgw_catalog_release(catalog);
        }
        if (can)
            len += snprintf(buf + len, bufsz - len, "%s%s", len != 0 ? ", " : "", route->model_name);
    }
    if (len >= bufsz && bufsz > 4)
        memcpy(buf + bufsz - 4, "...", 4); /* cut short */
}

/* A server tool the bot cannot run: a 400 that says why and where it can run (docs/mapping.md#server-tools). */
static void refuse_server_tool(translate_t *st)
{
    const char *tool = st->translated.refused_tool, *why = "and chat/completions has no equivalent of this tool";
    char routes[512];
    int web_search = strncmp(tool, "web_search_", 11) == 0;

    if (web_search)
        why = st->bot_known ? "which declares no web_search parameter in Poe's catalog"
                            : "which is not in Poe's catalog as loaded now (no such bot, or the catalog is not loaded yet)";

    capable_routes(st->relay.r->conf, web_search, routes, sizeof(routes));
    pgw_relay_respond_directly(&st->relay);
    pgw_send_error(st->relay.r->req, 400, PGW_ERR_INVALID_REQUEST,
                   "tools: the server tool %s cannot run on model %s: its route translates to Poe's bot %s, %s. Models whose "
                   "routes can run it: %s",
                   tool, st->model, st->bot, why,
                   routes[0] != '\0' ? routes : "none in this configuration (add an anthropic/ route)");
}

static void messages_translated(translate_t *st)
{
    pgw_request_t *r = st->relay.r;
    const pgw_route_t *route = st->relay.route;
    char url[2048];

    if (st->translated.refused_tool[0] != '\0') {
        refuse_server_tool(st);
        return;
    }

    make_msg_id(st->msg_id);
    st->ropts.msg_id = st->msg_id;
    st->ropts.model = st->model;
    st->ropts.input_tokens = st->translated.input_tokens;
    st->ropts.toolnames = &st->translated.toolnames;
    for (size_t i = 0; i != 4; ++i)
        st->ropts.stop_sequences[i] = st->translated.stop_sequences[i];
    st->ropts.secret = route->api_key;
    st->ropts.web_search = st->translated.web_search;
    st->ropts.buffer_tools = atomic_load(r->gen->route_buffer_tools + (route - r->conf->routes));

    struct curl_slist *headers = NULL;
    char auth[2048];
    snprintf(auth, sizeof(auth), "Bearer %s", route->api_key);
    headers = pgw_upstream_add_header(headers, "Authorization", h2o_iovec_init(auth, strlen(auth)));
    headers = pgw_upstream_add_route_headers(headers, route);
    snprintf(url, sizeof(url), "%s/chat/completions", route->api_base);

    pgw_upstream_request_t upreq = {url,
                                    "POST",
                                    h2o_iovec_init(st->upbody->bytes, st->upbody->size),
                                    headers,
                                    route->timeout,
                                    route->stream_timeout,
                                    route->max_retries,
                                    route->ssl_verify,
                                    route->h2c};
    st->relay.transfer = pgw_upstream_start(r->worker->upstream, &upreq, &callbacks, st);
}

void pgw_translate_route_messages(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body)
{
    prepare(r, route, name, body, messages_translated);
}
