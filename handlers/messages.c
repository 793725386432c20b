/* poe-gateway: MIT licence. POST /v1/messages and /v1/messages/count_tokens: validate, route, hand to the upstream. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "common/clock.h"
#include "common/errors.h"
#include "serve/generation.h"
#include "relay/passthrough.h"
#include "common/ratelimit.h"
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
    /* a value of the wrong type is not a missing one: say which type is expected (docs/errors.md#errors-the-gateway-makes) */
    if (body->model_len == 0) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "model: %s",
                       (body->given & PGW_REQBODY_MODEL) != 0 ? "must be a non-empty string" : "field required (a string)");
        return NULL;
    }
    if (!body->has_messages) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "messages: %s",
                       (body->given & PGW_REQBODY_MESSAGES) != 0 ? "must be an array" : "field required (an array)");
        return NULL;
    }
    if (!is_count_tokens && !body->has_max_tokens) {
        pgw_send_error(req, 400, PGW_ERR_INVALID_REQUEST, "max_tokens: %s",
                       (body->given & PGW_REQBODY_MAX_TOKENS) != 0 ? "must be a number" : "field required (a number)");
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
    /* a route that cannot work until its operator fixes the configuration: a retry cannot help, so the client is told
     * not to (docs/errors.md#retries-that-cannot-help) */
    if (route->api_key == NULL) {
        pgw_error_no_retry(req);
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
        pgw_error_no_retry(req);
        pgw_send_error(req, 503, PGW_ERR_API,
                       "the route for %s has no api_base: it names an environment variable that is not set (the gateway "
                       "logged which at start)",
                       model);
        return NULL;
    }
    return route;
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
    dispatch(r, r->route, r->body, r->is_count_tokens);
}

/* Routes the request, then lets it go upstream at its upstream key's shaped rate (counting tokens locally needs none). */
static int handle(pgw_request_t *r, int is_count_tokens)
{
    pgw_reqbody_t *body = h2o_mem_alloc_pool(&r->req->pool, sizeof(*body));
    const pgw_route_t *route;
    if ((route = route_request(r, body, is_count_tokens)) == NULL)
        return 0;
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
