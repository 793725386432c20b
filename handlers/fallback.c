/* poe-gateway: MIT licence. Which route serves a routed request: LiteLLM's fallbacks, context-window fallbacks and
 * cooldowns (handlers/fallback.h, docs/request-path.md#fallbacks). */
#include <stdio.h>
#include <string.h>
#include "common/clock.h"
#include "common/cooldown.h"
#include "common/log.h"
#include "common/ratelimit.h"
#include "config/route_match.h"
#include "serve/generation.h"
#include "serve/metrics.h"
#include "serve/worker.h"
#include "translate/translate_job.h"
#include "handlers/fallback.h"

#define MODULE_NAME "messages" /* the hand-overs are the messages handler's, and logged as its own */

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
    void (*go)(pgw_request_t *r); /* the handler's next step, for the route now in r->route */
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
    fb->go(fb->r);
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
    fb->go(r);
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

void pgw_fallback_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, void (*go)(pgw_request_t *r))
{
    pgw_reqbody_t *body = r->body;
    if (r->conf->num_fallbacks == 0) {
        set_route(r, route, name);
        go(r);
        return;
    }

    fallback_t *fb = h2o_mem_alloc_shared(&r->req->pool, sizeof(*fb), on_fallback_dispose);
    memset(fb, 0, sizeof(*fb));
    fb->r = r;
    fb->go = go;
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
}
