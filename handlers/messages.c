/* poe-gateway: MIT licence. POST /v1/messages, /v1/messages/count_tokens and /v1/chat/completions: validate, route,
 * check budgets and limits, take a turn at the rate, hand to the upstream (handlers/fallback.c picks the route that
 * serves). All three route by the body's `model` through the same checks; /v1/chat/completions answers its errors in
 * OpenAI's shape, since its clients are OpenAI clients (docs/request-path.md#chat-completions). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "serve/generation.h"
#include "relay/openai_passthrough.h"
#include "relay/passthrough.h"
#include "common/ratelimit.h"
#include "ledger/budget.h"
#include "serve/reqbody.h"
#include "config/route_match.h"
#include "serve/metrics.h"
#include "serve/shaper.h"
#include "serve/shared.h"
#include "relay/translate_route.h"
#include "serve/worker.h"
#include "handlers/fallback.h"
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
    /* a value of the wrong type is not a missing one: say which type is expected (docs/errors.md#errors-the-gateway-makes) */
    if (body->model_len == 0) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "model: %s",
                          (body->given & PGW_REQBODY_MODEL) != 0 ? "must be a non-empty string" : "field required (a string)");
        return NULL;
    }
    if (!body->has_messages) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "messages: %s",
                          (body->given & PGW_REQBODY_MESSAGES) != 0 ? "must be an array" : "field required (an array)");
        return NULL;
    }
    if (endpoint == ENDPOINT_MESSAGES && !body->has_max_tokens) {
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "max_tokens: %s",
                          (body->given & PGW_REQBODY_MAX_TOKENS) != 0 ? "must be a number" : "field required (a number)");
        return NULL;
    }
    if (!openai && body->no_messages) { /* the Anthropic API's words */
        pgw_send_error_as(req, openai, 400, PGW_ERR_INVALID_REQUEST, "messages: at least one message is required");
        return NULL;
    }

    /* the name as messages show it: it may hold a NUL or control characters (escaped in the JSON) */
    const char *model = pgw_error_quote(&req->pool, body->model, body->model_len);
    /* a picker alias is allowed as the route it names (docs/config.md#routing-a-model-name) */
    const pgw_route_t *alias = pgw_config_find_alias(r->conf, body->model, body->model_len);
    const char *allow_name = alias != NULL ? alias->model_name : body->model;
    size_t allow_len = alias != NULL ? strlen(alias->model_name) : body->model_len;
    if (r->key != NULL && !pgw_key_allows_model(r->key, allow_name, allow_len)) {
        pgw_send_error_as(req, openai, 403, PGW_ERR_PERMISSION, "key %s may not use model %s", r->key_name, model);
        return NULL;
    }
    if (r->key != NULL) {
        /* with Redis, the limits are checked once routed, in one question for every replica (check_limits) */
        uint64_t wait_ms =
            r->worker->redis == NULL ? pgw_ratelimit_take(r->gen->key_limits + (r->key - r->conf->keys), pgw_now_ms()) : 0;
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
    /* a route that cannot work until its operator fixes the configuration: a retry cannot help, so the client is told
     * not to (docs/errors.md#retries-that-cannot-help) */
    if (route->api_key == NULL) {
        pgw_error_no_retry(req);
        if (route->api_key_env != NULL)
            pgw_send_error_as(req, openai, 503, PGW_ERR_API,
                              "the route for %s has no Poe key: set the environment variable %s (e.g. in .env) and restart "
                              "the gateway",
                              model, route->api_key_env);
        else
            pgw_send_error_as(req, openai, 503, PGW_ERR_API, "the route for %s has no api_key configured", model);
        return NULL;
    }
    uint64_t wait_ms =
        r->worker->redis == NULL ? pgw_ratelimit_take(r->gen->route_limits + (route - r->conf->routes), pgw_now_ms()) : 0;
    if (wait_ms != 0) {
        send_rate_limited(req, openai, wait_ms, "route %s is over its limit of %d requests per minute", route->model_name,
                          route->rpm);
        return NULL;
    }
    if (route->api_base == NULL) {
        pgw_error_no_retry(req);
        pgw_send_error_as(req, openai, 503, PGW_ERR_API,
                          "the route for %s has no api_base: it names an environment variable that is not set (the gateway "
                          "logged which at start)",
                          model);
        return NULL;
    }
    return route;
}

/*
 * Budgets, checked before a request goes upstream (docs/ledger.md#budgets): past a budget, 402 billing_error with
 * x-should-retry: false, so that Claude Code shows the message at once instead of retrying (the SDK retries 408, 409,
 * 429 and 5xx unless told not to; a 402 it does not retry, and the header makes sure). Past PGW_BUDGET_WARN_AT of one,
 * the answer carries x-poe-gateway-budget-remaining. Returns 0 to go on, -1 after the refusal was sent.
 */
static int check_budget(pgw_request_t *r, const pgw_route_t *route)
{
    pgw_store_t *store = pgw_store_get();
    if (store == NULL)
        return 0;
    h2o_req_t *req = r->req;
    char text[640];
    pgw_budget_verdict_t v;
    int64_t now = (int64_t)pgw_now_ms();
    pgw_budget_check(store, r->conf, r->key_name, r->key, route->api_key_fp, now, &v);
    if (v.over) {
        pgw_error_no_retry(req);
        pgw_budget_message(&v, now, text, sizeof(text));
        pgw_send_error_as(req, r->endpoint == ENDPOINT_CHAT, 402, PGW_ERR_BILLING, "%s", text);
        return -1;
    }
    if (v.warn) {
        int len = pgw_budget_remaining(&v, text, sizeof(text));
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-poe-gateway-budget-remaining"), 0,
                              h2o_strdup(&req->pool, text, len).base, len, 1);
    }
    return 0;
}

/* Sends the request on its way to r->route, by the endpoint and the route's kind. */
static void dispatch(pgw_request_t *r)
{
    const pgw_route_t *route = r->route;
    if (r->endpoint == ENDPOINT_CHAT)
        pgw_openai_passthrough_start(r, route, r->route_model, r->body);
    else if (route->kind == PGW_ROUTE_ANTHROPIC)
        pgw_passthrough_start(r, route, r->route_model, r->body,
                              r->endpoint == ENDPOINT_COUNT_TOKENS ? "/v1/messages/count_tokens" : "/v1/messages");
    else if (r->endpoint == ENDPOINT_COUNT_TOKENS)
        pgw_translate_route_count_tokens(r, route, r->route_model, r->body);
    else
        pgw_translate_route_messages(r, route, r->route_model, r->body);
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
    /* again: what was spent while the request waited for its turn counts */
    if (r->endpoint != ENDPOINT_COUNT_TOKENS && check_budget(r, r->route) != 0)
        return;
    dispatch(r);
}

/* Lets the request go to r->route at its upstream key's shaped rate (counting tokens locally needs none). */
static void go(pgw_request_t *r)
{
    if (r->endpoint == ENDPOINT_COUNT_TOKENS && r->route->kind == PGW_ROUTE_OPENAI)
        dispatch(r);
    else
        pgw_shaper_admit(r->worker->shaper, r->bucket, r, r->conf->queue_timeout, on_admitted);
}

static void proceed(pgw_request_t *r, const pgw_route_t *route);

/* 429 for the key's or the route's rpm (`which` 0 or 1). */
static void limited(pgw_request_t *r, const pgw_route_t *route, int which, uint64_t wait_ms)
{
    if (which == 0)
        send_rate_limited(r->req, r->endpoint == ENDPOINT_CHAT, wait_ms, "key %s is over its limit of %d requests per minute",
                          r->key_name, r->key->rpm);
    else
        send_rate_limited(r->req, r->endpoint == ENDPOINT_CHAT, wait_ms, "route %s is over its limit of %d requests per minute",
                          route->model_name, route->rpm);
}

/* The process's own bucket of limit `which` (0 the key's, 1 the route's). */
static pgw_ratelimit_t *limit_of(pgw_request_t *r, const pgw_route_t *route, int which)
{
    return which == 0 ? r->gen->key_limits + (r->key - r->conf->keys) : r->gen->route_limits + (route - r->conf->routes);
}

/*
 * A question to Redis outlives the request when the client leaves: the ticket is the callback's, freed by it; the
 * request's pool holds a reference whose dispose tells the ticket the request is gone.
 */
struct limits_ticket {
    pgw_request_t *r;        /* NULL once the request is gone */
    const pgw_route_t *route;
    struct limits_ref *ref; /* in the request's pool; meaningful while `r` is set */
    int which[2];           /* the limits asked about, in order: 0 the key's, 1 the route's; -1 none */
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

/* The limits without Redis's answer: each replica takes its share (docs/threading.md#shared-state-across-replicas). */
static void check_limits_locally(pgw_request_t *r, const pgw_route_t *route, const int *which, size_t n)
{
    if (r->conf->redis_fail_closed) {
        on_admitted(r, -1);
        return;
    }
    unsigned share = atomic_load(&pgw_shared_replicas);
    for (size_t i = 0; i != n; ++i) {
        uint64_t wait_ms = pgw_ratelimit_take_share(limit_of(r, route, which[i]), pgw_now_ms(), share);
        if (wait_ms != 0) {
            limited(r, route, which[i], wait_ms);
            return;
        }
    }
    proceed(r, route);
}

static void on_limits_answer(void *data, int answered, int index, uint64_t wait_ms)
{
    struct limits_ticket *t = data;
    pgw_request_t *r = t->r;
    const pgw_route_t *route = t->route;
    int which[2] = {t->which[0], t->which[1]};
    size_t n = t->which[1] >= 0 ? 2 : 1;
    if (r != NULL)
        t->ref->ticket = NULL;
    free(t);
    if (r == NULL)
        return;
    if (!answered) {
        check_limits_locally(r, route, which, n);
    } else if (index > 0 && (size_t)index <= n) {
        limited(r, route, which[index - 1], wait_ms);
    } else {
        for (size_t i = 0; i != n; ++i) /* charged locally too, should this replica have to decide alone later */
            pgw_ratelimit_debit(limit_of(r, route, which[i]), pgw_now_ms(), atomic_load(&pgw_shared_replicas));
        proceed(r, route);
    }
}

/* With Redis: the key's and the route's rpm, shared by every replica, in one question; then proceed. */
static void check_limits(pgw_request_t *r, const pgw_route_t *route)
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
    if (route->rpm > 0) {
        snprintf(route_name, sizeof(route_name), "route:%s", route->model_name);
        names[n] = route_name;
        rpms[n] = route->rpm;
        which[n++] = 1;
    }
    if (n == 0) {
        proceed(r, route);
        return;
    }
    struct limits_ticket *t = h2o_mem_alloc(sizeof(*t));
    t->r = r;
    t->route = route;
    t->which[0] = which[0];
    t->which[1] = which[1];
    if (pgw_shared_limits(r->worker->redis, names, rpms, n, on_limits_answer, t) != 0) {
        free(t);
        check_limits_locally(r, route, which, n);
        return;
    }
    t->ref = h2o_mem_alloc_shared(&r->req->pool, sizeof(*t->ref), on_limits_ref_dispose);
    t->ref->ticket = t;
}

/* Routes the request, then lets it go upstream (docs/request-path.md#messages-checks-before-poe). */
static int handle(pgw_request_t *r, int endpoint)
{
    pgw_reqbody_t *body = h2o_mem_alloc_pool(&r->req->pool, sizeof(*body));
    const pgw_route_t *route;
    if ((route = route_request(r, body, endpoint)) == NULL)
        return 0;
    r->endpoint = endpoint;
    r->no_ledger = endpoint == ENDPOINT_COUNT_TOKENS;
    if (endpoint != ENDPOINT_COUNT_TOKENS && check_budget(r, route) != 0)
        return 0; /* refused before it is routed: the ledger records only requests that may go upstream */
    r->body = body;
    if (r->worker->redis != NULL)
        check_limits(r, route); /* then proceed */
    else
        proceed(r, route);
    return 0;
}

/* The rest of handle, past the limits: the route (or its fallbacks, handlers/fallback.c), then the turn at the rate. */
static void proceed(pgw_request_t *r, const pgw_route_t *route)
{
    pgw_fallback_start(r, route, h2o_iovec_init(r->model, r->body->model_len), go);
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
