/* poe-gateway: MIT licence. POST /v1/messages, /v1/messages/count_tokens and /v1/chat/completions: validate, route, hand
 * to the upstream. All three route by the body's `model` through the same checks; /v1/chat/completions answers its
 * errors in OpenAI's shape, since its clients are OpenAI clients (docs/request-path.md#chat-completions). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/clock.h"
#include "common/errors.h"
#include "serve/generation.h"
#include "relay/openai_passthrough.h"
#include "relay/passthrough.h"
#include "common/ratelimit.h"
#include "serve/reqbody.h"
#include "config/route_match.h"
#include "serve/shaper.h"
#include "serve/shared.h"
#include "relay/translate_route.h"
#include "serve/worker.h"
#include "handlers/handlers.h"

#define MODULE_NAME "messages"

/* What the request asks for: r->endpoint. */
enum { ENDPOINT_MESSAGES, ENDPOINT_COUNT_TOKENS, ENDPOINT_CHAT };

/* 429 with Retry-After in whole seconds. */
static void __attribute__((format(printf, 4, 5)))
send_rate_limited(h2o_req_t *req, int openai, uint64_t wait_ms, const char *fmt, ...)
{
    char secs[24], what[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof(what), fmt, args);
    va_end(args);
    int n = snprintf(secs, sizeof(secs), "%llu", (unsigned long long)((wait_ms + 999) / 1000));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, secs, n).base, n);
    pgw_send_error_as(req, openai, 429, PGW_ERR_RATE_LIMIT, "%s; retry in %s s", what, secs);
}

/*
 * Checks the caller, the body and the route. Returns the route, or NULL after an error response was sent.
 */
static const pgw_route_t *route_request(pgw_request_t *r, pgw_reqbody_t *body, int endpoint)
{
    h2o_req_t *req = r->req;
    int openai = endpoint == ENDPOINT_CHAT;
    char err[512];

    if (pgw_reqbody_inspect(req->entity.base, req->entity.len, body, err, sizeof(err)) != 0) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "%s", err);
        return NULL;
    }
    if (body->model_len == 0) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "model: field required (a string)");
        return NULL;
    }
    if (!body->has_messages) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "messages: field required (an array)");
        return NULL;
    }
    if (endpoint == ENDPOINT_MESSAGES && !body->has_max_tokens) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "max_tokens: field required (a number)");
        return NULL;
    }
    if (!openai && body->no_messages) { /* the Anthropic API's words */
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "messages: at least one message is required");
        return NULL;
    }

    /* the name as messages show it: it may hold a NUL or control characters (escaped in the JSON) */
    const char *model = pgw_error_quote(&req->pool, body->model, body->model_len);
    if (r->key != NULL && !pgw_key_allows_model(r->key, body->model, body->model_len)) {
        pgw_send_error_as(req, openai, 403, PGW_ERR_PERMISSION, "key %s may not use model %s", r->key_name, model);
        return NULL;
    }
    if (r->key != NULL && r->worker->redis == NULL) { /* with Redis, limits are checked after routing (check_limits) */
        uint64_t wait_ms = pgw_ratelimit_take(r->gen->key_limits + (r->key - r->conf->keys), pgw_now_ms());
        if (wait_ms != 0) {
            send_rate_limited(req, openai, wait_ms, "key %s is over its limit of %d requests per minute", r->key_name, r->key->rpm);
            return NULL;
        }
    }

    const pgw_route_t *route = pgw_config_find_route(r->conf, body->model, body->model_len);
    if (route == NULL) {
        const char *close[3];
        size_t n = pgw_config_suggest(r->conf, body->model, body->model_len, close, 3);
        if (n == 0) {
            pgw_send_error_as(req, openai, 404, PGW_ERR_NOT_FOUND, "model: %s is not configured on this gateway", model);
        } else {
            pgw_send_error_as(req, openai, 404, PGW_ERR_NOT_FOUND,
                              "model: %s is not configured on this gateway; closest: %s%s%s%s%s", model, close[0],
                              n > 1 ? ", " : "", n > 1 ? close[1] : "", n > 2 ? ", " : "", n > 2 ? close[2] : "");
        }
        return NULL;
    }
    r->route_name = route->model_name;
    r->model = h2o_strdup(&req->pool, body->model, body->model_len).base;
    if (route->api_key == NULL) {
        if (route->api_key_env != NULL)
            pgw_send_error_as(req, openai, 503, PGW_ERR_API,
                              "the route for %s has no Poe key: set the environment variable %s (e.g. in .env) and restart "
                              "the gateway",
                              model, route->api_key_env);
        else
            pgw_send_error_as(req, openai, 503, PGW_ERR_API, "the route for %s has no api_key configured", model);
        return NULL;
    }
    uint64_t wait_ms = r->worker->redis == NULL ? pgw_ratelimit_take(r->gen->route_limits + (route - r->conf->routes), pgw_now_ms()) : 0;
    if (wait_ms != 0) {
        send_rate_limited(req, openai, wait_ms, "route %s is over its limit of %d requests per minute", route->model_name,
                          route->rpm);
        return NULL;
    }
    if (route->api_base == NULL) {
        pgw_send_error_as(req, openai, 503, PGW_ERR_API,
                          "the route for %s has no api_base: it names an environment variable that is not set (the gateway "
                          "logged which at start)",
                          model);
        return NULL;
    }
    return route;
}

/* Sends the request on its way by the endpoint and the route's kind. */
static void dispatch(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body, int endpoint)
{
    if (endpoint == ENDPOINT_CHAT)
        pgw_openai_passthrough_start(r, route, body);
    else if (route->kind == PGW_ROUTE_ANTHROPIC)
        pgw_passthrough_start(r, route, body, endpoint == ENDPOINT_COUNT_TOKENS ? "/v1/messages/count_tokens" : "/v1/messages");
    else if (endpoint == ENDPOINT_COUNT_TOKENS)
        pgw_translate_route_count_tokens(r, route, body);
    else
        pgw_translate_route_messages(r, route, body);
}

/* The shaper's answer: go ahead, 429 after waiting queue_timeout for a turn, or 503 without the shared state. */
static void on_admitted(pgw_request_t *r, int admitted)
{
    if (admitted < 0) {
        pgw_send_error_as(r->req, r->endpoint == ENDPOINT_CHAT, 503, PGW_ERR_OVERLOADED,
                          "the shared state (gateway.redis) is unreachable and gateway.redis_failure is closed; retry when "
                          "Redis is back, or set gateway.redis_failure: open");
        return;
    }
    if (!admitted) {
        send_rate_limited(r->req, r->endpoint == ENDPOINT_CHAT, 1000,
                          "waited %.0f s for a turn at the upstream key's rate (gateway.upstream_rpm %d) in vain",
                          r->conf->queue_timeout, r->conf->upstream_rpm);
        return;
    }
    dispatch(r, r->route, r->body, r->endpoint);
}

/* Past the limits: counting tokens locally needs no turn at the rate; everything else waits for one. */
static void admit(pgw_request_t *r)
{
    if (r->endpoint == ENDPOINT_COUNT_TOKENS && r->route->kind == PGW_ROUTE_OPENAI)
        dispatch(r, r->route, r->body, r->endpoint);
    else
        pgw_shaper_admit(r->worker->shaper, r->bucket, r, r->conf->queue_timeout, on_admitted);
}

/* 429 for the key's or the route's rpm (`which` 0 or 1). */
static void limited(pgw_request_t *r, int which, uint64_t wait_ms)
{
    if (which == 0)
        send_rate_limited(r->req, r->endpoint == ENDPOINT_CHAT, wait_ms, "key %s is over its limit of %d requests per minute",
                          r->key_name, r->key->rpm);
    else
        send_rate_limited(r->req, r->endpoint == ENDPOINT_CHAT, wait_ms, "route %s is over its limit of %d requests per minute",
                          r->route->model_name, r->route->rpm);
}

/*
 * A question to Redis outlives the request when the client leaves: the ticket is the callback's, freed by it; the
 * request's pool holds a reference whose dispose tells the ticket the request is gone.
 */
struct limits_ticket {
    pgw_request_t *r;      /* NULL once the request is gone */
    struct limits_ref *ref; /* in the request's pool; NULL once the request is gone */
    int which[2];          /* the limits asked about, in order: 0 the key's, 1 the route's */
};
struct limits_ref {
    struct limits_ticket *ticket; /* NULL once the answer came */
};

static void on_limits_ref_dispose(void *p)
{
    struct limits_ref *ref = p;
    if (ref->ticket != NULL)
        ref->ticket->r = NULL;
}

static void check_limits_locally(pgw_request_t *r, const int *which, size_t n);

/* The process's own bucket of limit `which` (0 the key's, 1 the route's). */
static pgw_ratelimit_t *limit_of(pgw_request_t *r, int which)
{
    return which == 0 ? r->gen->key_limits + (r->key - r->conf->keys) : r->gen->route_limits + (r->route - r->conf->routes);
}

static void on_limits_answer(void *data, int answered, int index, uint64_t wait_ms)
{
    struct limits_ticket *t = data;
    pgw_request_t *r = t->r;
    int which[2] = {t->which[0], t->which[1]};
    size_t n = t->which[1] >= 0 ? 2 : 1;
    if (r != NULL)
        t->ref->ticket = NULL;
    free(t);
    if (r == NULL)
        return;
    if (!answered) {
        check_limits_locally(r, which, n);
    } else if (index > 0 && (size_t)index <= n) {
        limited(r, which[index - 1], wait_ms);
    } else {
        for (size_t i = 0; i != n; ++i) /* charged locally too, should this replica have to decide alone later */
            pgw_ratelimit_debit(limit_of(r, which[i]), pgw_now_ms(), atomic_load(&pgw_shared_replicas));
        admit(r);
    }
}

/* The limits without Redis's answer: each replica takes its share (docs/threading.md#shared-state-across-replicas). */
static void check_limits_locally(pgw_request_t *r, const int *which, size_t n)
{
    if (r->conf->redis_fail_closed) {
        on_admitted(r, -1);
        return;
    }
    unsigned share = atomic_load(&pgw_shared_replicas);
    for (size_t i = 0; i != n; ++i) {
        uint64_t wait_ms = pgw_ratelimit_take_share(limit_of(r, which[i]), pgw_now_ms(), share);
        if (wait_ms != 0) {
            limited(r, which[i], wait_ms);
            return;
        }
    }
    admit(r);
}

/* With Redis: the key's and the route's rpm, shared by every replica, in one question; then the turn at the rate. */
static void check_limits(pgw_request_t *r)
{
    const char *names[2];
    char key_name[160], route_name[160];
    int rpms[2], which[2] = {-1, -1};
    size_t n = 0;
    if (r->key != NULL && r->key->rpm > 0) {
        snprintf(key_name, sizeof(key_name), "key:%s", r->key->name);
        names[n] = key_name;
        rpms[n] = r->key->rpm;
        which[n++] = 0;
    }
    if (r->route->rpm > 0) {
        snprintf(route_name, sizeof(route_name), "route:%s", r->route->model_name);
        names[n] = route_name;
        rpms[n] = r->route->rpm;
        which[n++] = 1;
    }
    if (n == 0) {
        admit(r);
        return;
    }
    struct limits_ticket *t = h2o_mem_alloc(sizeof(*t));
    t->r = r;
    t->which[0] = which[0];
    t->which[1] = which[1];
    if (pgw_shared_limits(r->worker->redis, names, rpms, n, on_limits_answer, t) != 0) {
        free(t);
        check_limits_locally(r, which, n);
        return;
    }
    t->ref = h2o_mem_alloc_shared(&r->req->pool, sizeof(*t->ref), on_limits_ref_dispose);
    t->ref->ticket = t;
}

/* Routes the request, then lets it go upstream at its upstream key's shaped rate (counting tokens locally needs none). */
static int handle(pgw_request_t *r, int endpoint)
{
    pgw_reqbody_t *body = h2o_mem_alloc_pool(&r->req->pool, sizeof(*body));
    const pgw_route_t *route;
    if ((route = route_request(r, body, endpoint)) == NULL)
        return 0;
    r->route = route;
    r->body = body;
    r->endpoint = endpoint;
    r->bucket = r->gen->route_bucket[route - r->conf->routes];
    if (r->worker->redis != NULL)
        check_limits(r);
    else
        admit(r);
    return 0;
}

int pgw_handle_messages(pgw_request_t *r)
{
    return handle(r, ENDPOINT_MESSAGES);
}

int pgw_handle_count_tokens(pgw_request_t *r)
{
    return handle(r, ENDPOINT_COUNT_TOKENS);
}

int pgw_handle_chat_completions(pgw_request_t *r)
{
    return handle(r, ENDPOINT_CHAT);
}
