/* poe-gateway: MIT licence. POST /v1/messages and /v1/messages/count_tokens: validate, route, hand to the upstream. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/clock.h"
#include "common/errors.h"
#include "serve/generation.h"
#include "relay/passthrough.h"
#include "common/ratelimit.h"
#include "ledger/budget.h"
#include "serve/reqbody.h"
#include "config/route_match.h"
#include "serve/shaper.h"
#include "relay/translate_route.h"
#include "serve/worker.h"
#include "handlers/handlers.h"

#define MODULE_NAME "messages"

/* 429 with Retry-After in whole seconds. */
static void __attribute__((format(printf, 3, 4))) send_rate_limited(h2o_req_t *req, uint64_t wait_ms, const char *fmt, ...)
{
    char secs[24], what[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(what, sizeof(what), fmt, args);
    va_end(args);
    int n = snprintf(secs, sizeof(secs), "%llu", (unsigned long long)((wait_ms + 999) / 1000));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, h2o_strdup(&req->pool, secs, n).base, n);
    pgw_send_error(req, 429, PGW_ERR_RATE_LIMIT, "%s; retry in %s s", what, secs);
}

/*
 * Checks the caller, the body and the route. Returns the route, or NULL after an error response was sent.
 */
static const pgw_route_t *route_request(pgw_request_t *r, pgw_reqbody_t *body, int is_count_tokens)
{
    h2o_req_t *req = r->req;
    char err[512];

    if (pgw_reqbody_inspect(req->entity.base, req->entity.len, body, err, sizeof(err)) != 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "%s", err);
        return NULL;
    }
    if (body->model_len == 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: field required (a string)");
        return NULL;
    }
    if (!body->has_messages) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "messages: field required (an array)");
        return NULL;
    }
    if (!is_count_tokens && !body->has_max_tokens) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "max_tokens: field required (a number)");
        return NULL;
    }
    if (body->no_messages) { /* the Anthropic API's words */
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "messages: at least one message is required");
        return NULL;
    }

    /* the name as messages show it: it may hold a NUL or control characters (escaped in the JSON) */
    const char *model = pgw_error_quote(&req->pool, body->model, body->model_len);
    if (r->key != NULL && !pgw_key_allows_model(r->key, body->model, body->model_len)) {
        pgw_send_error(req, 403, PGW_ERR_PERMISSION, "key %s may not use model %s", r->key_name, model);
        return NULL;
    }
    if (r->key != NULL) {
        uint64_t wait_ms = pgw_ratelimit_take(r->gen->key_limits + (r->key - r->conf->keys), pgw_now_ms());
        if (wait_ms != 0) {
            send_rate_limited(req, wait_ms, "key %s is over its limit of %d requests per minute", r->key_name, r->key->rpm);
            return NULL;
        }
    }

    const pgw_route_t *route = pgw_config_find_route(r->conf, body->model, body->model_len);
    if (route == NULL) {
        const char *close[3];
        size_t n = pgw_config_suggest(r->conf, body->model, body->model_len, close, 3);
        if (n == 0) {
            pgw_send_error(req, 404, PGW_ERR_NOT_FOUND, "model: %s is not configured on this gateway", model);
        } else {
            pgw_send_error(req, 404, PGW_ERR_NOT_FOUND, "model: %s is not configured on this gateway; closest: %s%s%s%s%s",
                           model, close[0], n > 1 ? ", " : "", n > 1 ? close[1] : "", n > 2 ? ", " : "",
                           n > 2 ? close[2] : "");
        }
        return NULL;
    }
    r->route_name = route->model_name;
    r->model = h2o_strdup(&req->pool, body->model, body->model_len).base;
    if (route->api_key == NULL) {
        if (route->api_key_env != NULL)
            pgw_send_error(req, 503, PGW_ERR_API,
                           "the route for %s has no Poe key: set the environment variable %s (e.g. in .env) and restart "
                           "the gateway",
                           model, route->api_key_env);
        else
            pgw_send_error(req, 503, PGW_ERR_API, "the route for %s has no api_key configured", model);
        return NULL;
    }
    uint64_t wait_ms = pgw_ratelimit_take(r->gen->route_limits + (route - r->conf->routes), pgw_now_ms());
    if (wait_ms != 0) {
        send_rate_limited(req, wait_ms, "route %s is over its limit of %d requests per minute", route->model_name, route->rpm);
        return NULL;
    }
    if (route->api_base == NULL) {
        pgw_send_error(req, 503, PGW_ERR_API,
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
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-should-retry"), 0, NULL, H2O_STRLIT("false"));
        pgw_budget_message(&v, now, text, sizeof(text));
        pgw_send_error(req, 402, PGW_ERR_BILLING, "%s", text);
        return -1;
    }
    if (v.warn) {
        int len = pgw_budget_remaining(&v, text, sizeof(text));
        h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-poe-gateway-budget-remaining"), 0,
                              h2o_strdup(&req->pool, text, len).base, len, 1);
    }
    return 0;
}

/* Sends the request on its way by the route's kind. */
static void dispatch(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body, int is_count_tokens)
{
    if (route->kind == PGW_ROUTE_ANTHROPIC)
        pgw_passthrough_start(r, route, body, is_count_tokens ? "/v1/messages/count_tokens" : "/v1/messages");
    else if (is_count_tokens)
        pgw_translate_route_count_tokens(r, route, body);
    else
        pgw_translate_route_messages(r, route, body);
}

/* The shaper's answer: go ahead, or 429 after waiting queue_timeout for a turn. */
static void on_admitted(pgw_request_t *r, int admitted)
{
    if (!admitted) {
        send_rate_limited(r->req, 1000, "waited %.0f s for a turn at the upstream key's rate (gateway.upstream_rpm %d) in vain",
                          r->conf->queue_timeout, r->conf->upstream_rpm);
        return;
    }
    /* again: what was spent while the request waited for its turn counts */
    if (!r->is_count_tokens && check_budget(r, r->route) != 0)
        return;
    dispatch(r, r->route, r->body, r->is_count_tokens);
}

/* Routes the request, then lets it go upstream at its upstream key's shaped rate (counting tokens locally needs none). */
static int handle(pgw_request_t *r, int is_count_tokens)
{
    pgw_reqbody_t *body = h2o_mem_alloc_pool(&r->req->pool, sizeof(*body));
    const pgw_route_t *route;
    if ((route = route_request(r, body, is_count_tokens)) == NULL)
        return 0;
    if (!is_count_tokens && check_budget(r, route) != 0)
        return 0; /* refused before it is routed: the ledger records only requests that may go upstream */
    r->route = route;
    r->body = body;
    r->is_count_tokens = is_count_tokens;
    r->bucket = r->gen->route_bucket[route - r->conf->routes];
    if (is_count_tokens && route->kind == PGW_ROUTE_OPENAI)
        dispatch(r, route, body, 1);
    else
        pgw_shaper_admit(r->worker->shaper, r->bucket, r, r->conf->queue_timeout, on_admitted);
    return 0;
}

int pgw_handle_messages(pgw_request_t *r)
{
    return handle(r, 0);
}

int pgw_handle_count_tokens(pgw_request_t *r)
{
    return handle(r, 1);
}
