/* poe-gateway: MIT licence. POST /v1/messages, /v1/messages/count_tokens and /v1/chat/completions: validate, route, hand
 * to the upstream, and hand on to a fallback route when the route fails before the client has seen a byte. All three
 * route by the body's `model` through the same checks; /v1/chat/completions answers its errors in OpenAI's shape, since
 * its clients are OpenAI clients (docs/request-path.md#chat-completions). */
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
#include "translate/translate_job.h"
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

/*
 * Fallbacks (docs/request-path.md#fallbacks). A request whose model has a fallback list keeps this state. A route that
 * fails before the client has seen a byte offers its failure through pgw_relay_hand_off, which calls on_fallback: the
 * failure counts towards the route's cooldown, and the next target of the list that can take the request becomes
 * r->route. The route's own state is finished by then (the relay is final, its transfer stopped) and the request is
 * re-dispatched with the body it still holds, from the next loop turn (`hop`): the offer may come from inside a curl
 * callback, which must not start a transfer. Only the requested model's own list is walked, once, in order.
 */
typedef struct st_fallback_t {
    h2o_timeout_entry_t hop; /* linked while the hand-over to the next route waits for the next loop turn */
    pgw_request_t *r;
    const pgw_fallbacks_t *list; /* the fallbacks of the model asked for (conf), or NULL */
    size_t next;                 /* the next of list->to to try */
    size_t res_headers;          /* response headers set before any route ran: a failed route's own go with it */
    /* context_window_fallbacks: the prompt's estimate (made by the request translator, into these) */
    pgw_translate_job_t *job; /* while it runs */
    h2o_buffer_t *scratch;    /* the translation itself, not used */
    pgw_translated_t translated;
} fallback_t;

static void on_fallback_dispose(void *p)
{
    fallback_t *fb = p;
    if (h2o_timeout_is_linked(&fb->hop))
        h2o_timeout_unlink(&fb->hop);
    if (fb->job != NULL)
        pgw_translate_job_cancel(fb->job);
    if (fb->scratch != NULL) {
        h2o_buffer_dispose(&fb->scratch);
        pgw_translated_dispose(&fb->translated);
    }
}

/* Makes `route`, asked for `name`, the one serving r; the response says so in x-poe-gateway-route. */
static void set_route(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name)
{
    h2o_req_t *req = r->req;
    fallback_t *fb = r->fallback_data;
    r->route = route;
    r->route_name = route->model_name;
    r->route_model = name;
    r->bucket = r->gen->route_bucket[route - r->conf->routes];
    if (fb != NULL)
        req->res.headers.size = fb->res_headers; /* what a failed route added (Poe's rate-limit headers) is not the answer's */
    for (const char *p = route->model_name; *p != '\0'; ++p)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return; /* not a header value */
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-poe-gateway-route"), 0, NULL, route->model_name,
                          strlen(route->model_name));
}

/* Whether `route` can take a request now: a key and a base, not resting, and within its rpm (whose token is then taken). */
static int can_take(pgw_request_t *r, const pgw_route_t *route, uint64_t now)
{
    size_t i = route - r->conf->routes;
    return route->api_key != NULL && route->api_base != NULL && !pgw_cooldown_active(r->gen->route_cooldowns + i, now) &&
           pgw_ratelimit_take(r->gen->route_limits + i, now) == 0;
}

/*
 * The next target of the list that can take the request (and is not r->route asked for the same name), or NULL: a
 * named key only reaches the names its `models` allow. With `prompt_tokens`, only routes without a
 * model_info.max_input_tokens or with one that large qualify.
 */
static const pgw_fallback_target_t *next_target(fallback_t *fb, uint64_t now, long long prompt_tokens)
{
    pgw_request_t *r = fb->r;
    while (fb->list != NULL && fb->next < fb->list->num_to) {
        const pgw_fallback_target_t *t = fb->list->to + fb->next++;
        const pgw_route_t *route = r->conf->routes + t->route;
        if (route == r->route && strlen(t->name) == r->route_model.len &&
            memcmp(t->name, r->route_model.base, r->route_model.len) == 0)
            continue;
        if (r->key != NULL && !pgw_key_allows_model(r->key, t->name, strlen(t->name)))
            continue;
        if (route->max_input_tokens != 0 && prompt_tokens > route->max_input_tokens)
            continue;
        if (can_take(r, route, now))
            return t;
    }
    return NULL;
}

static void on_hop(h2o_timeout_entry_t *entry)
{
    fallback_t *fb = H2O_STRUCT_FROM_MEMBER(fallback_t, hop, entry);
    go(fb->r);
}

/* Hands the request to target `to` (logged with `why`, counted in /metrics); its route runs from the next loop turn. */
static void hop(fallback_t *fb, const pgw_fallback_target_t *to, const char *why)
{
    pgw_request_t *r = fb->r;
    const pgw_route_t *from = r->route, *route = r->conf->routes + to->route;
    pgw_log_info(MODULE_NAME, "route %s %s: %s goes to route %s", from->model_name, why, r->model, route->model_name);
    pgw_metrics_fallback(r->worker->metrics, from->model_name, route->model_name);
    if (r->first_route_name == NULL)
        r->first_route_name = from->model_name;
    set_route(r, route, h2o_iovec_init(to->name, strlen(to->name)));
    h2o_timeout_link(r->req->conn->ctx->loop, &r->req->conn->ctx->zero_timeout, &fb->hop);
}

/* r->fallback: a route failed before the client saw a byte. 1 when the next target takes the request. */
static int on_fallback(pgw_request_t *r, int status)
{
    fallback_t *fb = r->fallback_data;
    char why[64];

    /* LiteLLM falls back on rate limits, overload, server errors and timeouts; an invalid request would fail anywhere */
    if (!(status == 408 || status == 429 || status >= 500))
        return 0;
    uint64_t now = pgw_now_ms();
    const pgw_route_t *route = r->route;
    if (pgw_cooldown_fail(r->gen->route_cooldowns + (route - r->conf->routes), r->conf->allowed_fails,
                          (uint64_t)(r->conf->cooldown_time * 1000), now))
        pgw_log_warn(MODULE_NAME, "route %s failed more than %d times within a minute: cooling down for %g s", route->model_name,
                     r->conf->allowed_fails, r->conf->cooldown_time);
    const pgw_fallback_target_t *to = next_target(fb, now, 0);
    if (to == NULL)
        return 0;
    snprintf(why, sizeof(why), "failed with %d", status);
    hop(fb, to, why);
    return 1;
}

/* Starts the request on r->route, or on its first fallback that can take it while the route cools down. */
static void begin(fallback_t *fb)
{
    pgw_request_t *r = fb->r;
    uint64_t now = pgw_now_ms();
    if (pgw_cooldown_active(r->gen->route_cooldowns + (r->route - r->conf->routes), now)) {
        const pgw_fallback_target_t *to = next_target(fb, now, 0);
        if (to != NULL) {
            hop(fb, to, "is cooling down");
            return;
        }
        /* nothing else can take it: the resting route is tried rather than the request refused */
    }
    go(r);
}

/* The prompt's estimate is known: a prompt that does not fit the route goes to the first context-window fallback it fits. */
static void on_estimated(void *ctx, int ret, const char *err)
{
    fallback_t *fb = ctx;
    pgw_request_t *r = fb->r;
    const pgw_route_t *route = r->route;
    long long tokens = fb->translated.input_tokens;

    /* only the number was wanted: the translation, as large as the prompt, goes now rather than with the request */
    h2o_buffer_dispose(&fb->scratch);
    pgw_translated_dispose(&fb->translated);
    fb->scratch = NULL;
    if (ret == 0 && tokens > route->max_input_tokens) {
        const pgw_fallbacks_t *general = fb->list;
        size_t general_next = fb->next;
        fb->list = pgw_config_find_fallbacks(r->conf, 1, r->route_model.base, r->route_model.len, route);
        fb->next = 0;
        const pgw_fallback_target_t *to = next_target(fb, pgw_now_ms(), tokens);
        if (to != NULL) {
            char why[96];
            snprintf(why, sizeof(why), "takes %lld input tokens, the prompt has about %lld", route->max_input_tokens, tokens);
            /* from now on the request is for the target: its own fallbacks apply */
            fb->list = pgw_config_find_fallbacks(r->conf, 0, to->name, strlen(to->name), r->conf->routes + to->route);
            fb->next = 0;
            hop(fb, to, why);
            return;
        }
        /* none fits: the route is asked, and Poe's "prompt is too long" lets the client compact */
        fb->list = general;
        fb->next = general_next;
    }
    /* a body the translator refuses is the route's to answer */
    begin(fb);
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

/* The rest of handle, past the limits: the route, its fallbacks, then the turn at the rate. */
static void proceed(pgw_request_t *r, const pgw_route_t *route)
{
    pgw_reqbody_t *body = r->body;
    h2o_iovec_t name = h2o_iovec_init(r->model, body->model_len);
    if (r->conf->num_fallbacks == 0) {
        set_route(r, route, name);
        go(r);
        return;
    }

    fallback_t *fb = h2o_mem_alloc_shared(&r->req->pool, sizeof(*fb), on_fallback_dispose);
    memset(fb, 0, sizeof(*fb));
    fb->r = r;
    fb->hop.cb = on_hop;
    fb->res_headers = r->req->res.headers.size;
    fb->list = pgw_config_find_fallbacks(r->conf, 0, body->model, body->model_len, route);
    r->fallback = on_fallback;
    r->fallback_data = fb;
    set_route(r, route, name);
    if (route->max_input_tokens == 0 || pgw_config_find_fallbacks(r->conf, 1, body->model, body->model_len, route) == NULL) {
        begin(fb);
        return;
    }
    /* the estimate is the request translator's (docs/mapping.md#the-token-estimate), whatever the route's kind */
    pgw_translate_opts_t opts = {"estimate"};
    h2o_buffer_init(&fb->scratch, &h2o_socket_buffer_prototype);
    pgw_translate_job_start(&fb->job, r->req->conn->ctx->loop, r->req->entity.base, r->req->entity.len, &opts, NULL, &fb->scratch,
                            &fb->translated, on_estimated, fb);
    return;
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
