/* poe-gateway: MIT licence. Counters and histograms per worker, written without locks by the worker's own thread and
 * summed at read time: the Prometheus text behind /metrics and the JSON behind /usage.
 *
 * Each worker owns fixed-size open-addressing tables of series. A series is created once by the worker and published
 * with a release store of its pointer; its labels never change afterwards, and its counters are relaxed atomics that
 * only the worker writes. A reader on another thread walks the slots with acquire loads and sums: no lock, no
 * rehashing under its feet. When a table is full, new label sets go to one "(other)" series, so a flood of distinct
 * model names cannot grow memory without bound.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "json.h"
#include "metrics.h"

#define REQUEST_SLOTS 1024 /* key x route x model x status */
#define TOKEN_SLOTS 512    /* key x model */
#define ROUTE_SLOTS 256    /* route, for the histograms */

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
#define NUM_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct request_series {
    char *key, *route, *model;
    int status;
    atomic_ullong count;
};

struct token_series {
    char *key, *model;
    atomic_ullong requests, input, output, cache_read, cache_write;
    /* today (UTC day number in `day`); reset by the writer when the day changes */
    atomic_llong day;
    atomic_ullong day_requests, day_input, day_output, day_cache_read, day_cache_write;
};

struct histogram {
    atomic_ullong counts[NUM_BUCKETS + 1]; /* the last is +Inf */
    atomic_ullong sum_us;
};

struct route_series {
    char *route;
    struct histogram ttfb, duration;
};

struct st_pgw_metrics_t {
    _Atomic(struct request_series *) requests[REQUEST_SLOTS];
    _Atomic(struct token_series *) tokens[TOKEN_SLOTS];
    _Atomic(struct route_series *) routes[ROUTE_SLOTS];
    atomic_ullong outcomes[PGW_OUTCOME_COUNT]; /* requests by how their answer ended */
    size_t num_requests, num_tokens; /* series made (the writer's own bookkeeping): the last slot is kept for (other) */
};

static uint64_t hash_str(uint64_t h, const char *s)
{
    for (; *s != '\0'; ++s)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return (h ^ 0xff) * 1099511628211ULL;
}

static int same(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

pgw_metrics_t *pgw_metrics_create(void)
{
    pgw_metrics_t *m = h2o_mem_alloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    return m;
}

void pgw_metrics_destroy(pgw_metrics_t *m)
{
    for (size_t i = 0; i != REQUEST_SLOTS; ++i) {
        struct request_series *s = atomic_load(&m->requests[i]);
        if (s != NULL) {
            free(s->key);
            free(s->route);
            free(s->model);
            free(s);
        }
    }
    for (size_t i = 0; i != TOKEN_SLOTS; ++i) {
        struct token_series *s = atomic_load(&m->tokens[i]);
        if (s != NULL) {
            free(s->key);
            free(s->model);
            free(s);
        }
    }
    for (size_t i = 0; i != ROUTE_SLOTS; ++i) {
        struct route_series *s = atomic_load(&m->routes[i]);
        if (s != NULL) {
            free(s->route);
            free(s);
        }
    }
    free(m);
}

static struct request_series *request_series(pgw_metrics_t *m, const char *key, const char *route, const char *model, int status)
{
    uint64_t h = hash_str(hash_str(hash_str(14695981039346656037ULL, key), route), model) ^ (uint64_t)status;
    for (size_t i = 0; i != REQUEST_SLOTS; ++i) {
        size_t slot = (h + i) % REQUEST_SLOTS;
        struct request_series *s = atomic_load_explicit(&m->requests[slot], memory_order_relaxed);
        if (s == NULL) {
            if (m->num_requests >= REQUEST_SLOTS - 1 && strcmp(model, "(other)") != 0)
                break; /* the last free slot is kept for (other) */
            ++m->num_requests;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->key = strdup(key);
            s->route = strdup(route);
            s->model = strdup(model);
            s->status = status;
            atomic_store_explicit(&m->requests[slot], s, memory_order_release);
            return s;
        }
        if (s->status == status && same(s->key, key) && same(s->route, route) && same(s->model, model))
            return s;
    }
    return strcmp(model, "(other)") == 0 ? NULL : request_series(m, "(other)", "(other)", "(other)", 0);
}

static struct token_series *token_series(pgw_metrics_t *m, const char *key, const char *model)
{
    uint64_t h = hash_str(hash_str(14695981039346656037ULL, key), model);
    for (size_t i = 0; i != TOKEN_SLOTS; ++i) {
        size_t slot = (h + i) % TOKEN_SLOTS;
        struct token_series *s = atomic_load_explicit(&m->tokens[slot], memory_order_relaxed);
        if (s == NULL) {
            if (m->num_tokens >= TOKEN_SLOTS - 1 && strcmp(model, "(other)") != 0)
                break; /* the last free slot is kept for (other) */
            ++m->num_tokens;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->key = strdup(key);
            s->model = strdup(model);
            atomic_store_explicit(&m->tokens[slot], s, memory_order_release);
            return s;
        }
        if (same(s->key, key) && same(s->model, model))
            return s;
    }
    return strcmp(model, "(other)") == 0 ? NULL : token_series(m, key, "(other)");
}

static struct route_series *route_series(pgw_metrics_t *m, const char *route)
{
    uint64_t h = hash_str(14695981039346656037ULL, route);
    for (size_t i = 0; i != ROUTE_SLOTS; ++i) {
        size_t slot = (h + i) % ROUTE_SLOTS;
        struct route_series *s = atomic_load_explicit(&m->routes[slot], memory_order_relaxed);
        if (s == NULL) {
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->route = strdup(route);
            atomic_store_explicit(&m->routes[slot], s, memory_order_release);
            return s;
        }
        if (same(s->route, route))
            return s;
    }
    return NULL;
}

#define ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

static void observe(struct histogram *h, double seconds)
{
    size_t i = 0;
    while (i != NUM_BUCKETS && seconds > buckets[i])
        ++i;
    ADD(h->counts[i], 1);
    ADD(h->sum_us, (unsigned long long)(seconds * 1e6));
}

void pgw_metrics_record(pgw_metrics_t *m, const pgw_metrics_request_t *req, uint64_t now_ms)
{
    struct request_series *rs = request_series(m, req->key, req->route, req->model, req->status);
    if (rs != NULL)
        ADD(rs->count, 1);
    ADD(m->outcomes[(unsigned)req->outcome < PGW_OUTCOME_COUNT ? req->outcome : PGW_OUTCOME_OK], 1);
    struct route_series *route = route_series(m, req->route);
    if (route != NULL) {
        observe(&route->ttfb, req->ttfb_s);
        observe(&route->duration, req->duration_s);
    }
    if (strcmp(req->model, "-") == 0)
        return; /* not routed: no tokens, and no usage line */
    struct token_series *ts = token_series(m, req->key, req->model);
    if (ts == NULL)
        return;
    long long today = (long long)(now_ms / 86400000);
    if (atomic_load_explicit(&ts->day, memory_order_relaxed) != today) {
        atomic_store_explicit(&ts->day_requests, 0, memory_order_relaxed);
        atomic_store_explicit(&ts->day_input, 0, memory_order_relaxed);
        atomic_store_explicit(&ts->day_output, 0, memory_order_relaxed);
        atomic_store_explicit(&ts->day_cache_read, 0, memory_order_relaxed);
        atomic_store_explicit(&ts->day_cache_write, 0, memory_order_relaxed);
        atomic_store_explicit(&ts->day, today, memory_order_release);
    }
    const pgw_usage_t *u = req->usage;
    ADD(ts->requests, 1);
    ADD(ts->day_requests, 1);
    ADD(ts->input, (unsigned long long)u->input_tokens);
    ADD(ts->day_input, (unsigned long long)u->input_tokens);
    ADD(ts->output, (unsigned long long)u->output_tokens);
    ADD(ts->day_output, (unsigned long long)u->output_tokens);
    ADD(ts->cache_read, (unsigned long long)u->cache_read_input_tokens);
    ADD(ts->day_cache_read, (unsigned long long)u->cache_read_input_tokens);
    ADD(ts->cache_write, (unsigned long long)u->cache_creation_input_tokens);
    ADD(ts->day_cache_write, (unsigned long long)u->cache_creation_input_tokens);
}

/* ---- reading ---- */

#define LOAD(field) atomic_load_explicit(&(field), memory_order_relaxed)

/* Prometheus label values: backslash, double quote and newline escaped. */
static void label(h2o_buffer_t **out, const char *name, const char *value, int first)
{
    if (!first)
        pgw_buf_append_lit(out, ",");
    pgw_buf_append_str(out, name);
    pgw_buf_append_lit(out, "=\"");
    for (const char *p = value; *p != '\0'; ++p) {
        if (*p == '\\' || *p == '"')
            pgw_buf_append(out, "\\", 1);
        if (*p == '\n')
            pgw_buf_append_lit(out, "\\n");
        else
            pgw_buf_append(out, p, 1);
    }
    pgw_buf_append_lit(out, "\"");
}

static void number(h2o_buffer_t **out, unsigned long long v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), " %llu\n", v);
    pgw_buf_append(out, tmp, n);
}

static const char *error_type(int status)
{
    switch (status) {
    case 400: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default: return "api_error";
    }
}

/* Series of every worker with the same labels are summed: find the first occurrence, add the others to it. */
static int first_request_occurrence(pgw_metrics_t *const *all, size_t w, size_t slot, const struct request_series *s)
{
    for (size_t i = 0; i != w; ++i)
        for (size_t j = 0; j != REQUEST_SLOTS; ++j) {
            struct request_series *o = atomic_load_explicit(&all[i]->requests[j], memory_order_acquire);
            if (o != NULL && o->status == s->status && same(o->key, s->key) && same(o->route, s->route) && same(o->model, s->model))
                return 0;
        }
    return 1;
}

static unsigned long long sum_requests(pgw_metrics_t *const *all, size_t n, const struct request_series *s)
{
    unsigned long long total = 0;
    for (size_t i = 0; i != n; ++i)
        for (size_t j = 0; j != REQUEST_SLOTS; ++j) {
            struct request_series *o = atomic_load_explicit(&all[i]->requests[j], memory_order_acquire);
            if (o != NULL && o->status == s->status && same(o->key, s->key) && same(o->route, s->route) && same(o->model, s->model))
                total += LOAD(o->count);
        }
    return total;
}

static struct token_series *find_token(pgw_metrics_t *m, const char *key, const char *model)
{
    for (size_t j = 0; j != TOKEN_SLOTS; ++j) {
        struct token_series *o = atomic_load_explicit(&m->tokens[j], memory_order_acquire);
        if (o != NULL && same(o->key, key) && same(o->model, model))
            return o;
    }
    return NULL;
}

static struct route_series *find_route(pgw_metrics_t *m, const char *route)
{
    for (size_t j = 0; j != ROUTE_SLOTS; ++j) {
        struct route_series *o = atomic_load_explicit(&m->routes[j], memory_order_acquire);
        if (o != NULL && same(o->route, route))
            return o;
    }
    return NULL;
}


void pgw_metrics_render(pgw_metrics_t *const *all, size_t n, const pgw_metrics_gauges_t *g, h2o_buffer_t **out)
{
    /* requests and errors */
    pgw_buf_append_lit(out, "# HELP poe_gateway_requests_total Requests answered, by key name, route, model and status.\n"
                            "# TYPE poe_gateway_requests_total counter\n");
    for (size_t w = 0; w != n; ++w)
        for (size_t j = 0; j != REQUEST_SLOTS; ++j) {
            struct request_series *s = atomic_load_explicit(&all[w]->requests[j], memory_order_acquire);
            if (s == NULL || !first_request_occurrence(all, w, j, s))
                continue;
            char status[8];
            snprintf(status, sizeof(status), "%d", s->status);
            pgw_buf_append_lit(out, "poe_gateway_requests_total{");
            label(out, "key", s->key, 1);
            label(out, "route", s->route, 0);
            label(out, "model", s->model, 0);
            label(out, "status", status, 0);
            pgw_buf_append_lit(out, "}");
            number(out, sum_requests(all, n, s));
        }
    pgw_buf_append_lit(out, "# HELP poe_gateway_errors_total Error responses, by Anthropic error type.\n"
                            "# TYPE poe_gateway_errors_total counter\n");
    {
        static const char *types[] = {"invalid_request_error", "authentication_error", "billing_error", "permission_error",
                                      "not_found_error", "request_too_large", "rate_limit_error", "timeout_error",
                                      "overloaded_error", "api_error"};
        unsigned long long counts[10] = {0};
        for (size_t w = 0; w != n; ++w)
            for (size_t j = 0; j != REQUEST_SLOTS; ++j) {
                struct request_series *s = atomic_load_explicit(&all[w]->requests[j], memory_order_acquire);
                if (s == NULL || s->status < 400)
                    continue;
                const char *t = error_type(s->status);
                for (size_t k = 0; k != 10; ++k)
                    if (strcmp(types[k], t) == 0)
                        counts[k] += LOAD(s->count);
            }
        for (size_t k = 0; k != 10; ++k) {
            pgw_buf_append_lit(out, "poe_gateway_errors_total{");
            label(out, "type", types[k], 1);
            pgw_buf_append_lit(out, "}");
            number(out, counts[k]);
        }
    }

    pgw_buf_append_lit(out, "# HELP poe_gateway_request_outcomes_total Requests by how their answer ended: ok, upstream_cut (Poe's "
                            "answer broke off or was unusable; the client got a 5xx or an error event), upstream_error (Poe's own "
                            "error), client_gone.\n"
                            "# TYPE poe_gateway_request_outcomes_total counter\n");
    for (int k = 0; k != PGW_OUTCOME_COUNT; ++k) {
        unsigned long long count = 0;
        for (size_t w = 0; w != n; ++w)
            count += LOAD(all[w]->outcomes[k]);
        pgw_buf_append_lit(out, "poe_gateway_request_outcomes_total{");
        label(out, "outcome", pgw_outcome_name(k), 1);
        pgw_buf_append_lit(out, "}");
        number(out, count);
    }

    /* tokens */
    pgw_buf_append_lit(out, "# HELP poe_gateway_tokens_total Tokens Poe reported, by key name, model and kind.\n"
                            "# TYPE poe_gateway_tokens_total counter\n");
    static const char *kinds[] = {"input", "output", "cache_read", "cache_write"};
    for (size_t w = 0; w != n; ++w)
        for (size_t j = 0; j != TOKEN_SLOTS; ++j) {
            struct token_series *s = atomic_load_explicit(&all[w]->tokens[j], memory_order_acquire);
            int first = 1;
            if (s == NULL)
                continue;
            for (size_t i = 0; i != w && first; ++i)
                first = find_token(all[i], s->key, s->model) == NULL;
            if (!first)
                continue;
            unsigned long long sums[4] = {0};
            for (size_t i = w; i != n; ++i) {
                struct token_series *o = find_token(all[i], s->key, s->model);
                if (o == NULL)
                    continue;
                sums[0] += LOAD(o->input);
                sums[1] += LOAD(o->output);
                sums[2] += LOAD(o->cache_read);
                sums[3] += LOAD(o->cache_write);
            }
            for (size_t k = 0; k != 4; ++k) {
                pgw_buf_append_lit(out, "poe_gateway_tokens_total{");
                label(out, "key", s->key, 1);
                label(out, "model", s->model, 0);
                label(out, "kind", kinds[k], 0);
                pgw_buf_append_lit(out, "}");
                number(out, sums[k]);
            }
        }

    /* histograms, by route */
    static const char *hist_names[] = {"poe_gateway_time_to_first_byte_seconds", "poe_gateway_request_duration_seconds"};
    static const char *hist_help[] = {"Time from the request to the first response byte.", "Time from the request to its end."};
    for (size_t h = 0; h != 2; ++h) {
        pgw_buf_append_lit(out, "# HELP ");
        pgw_buf_append_str(out, hist_names[h]);
        pgw_buf_append_lit(out, " ");
        pgw_buf_append_str(out, hist_help[h]);
        pgw_buf_append_lit(out, "\n# TYPE ");
        pgw_buf_append_str(out, hist_names[h]);
        pgw_buf_append_lit(out, " histogram\n");
        for (size_t w = 0; w != n; ++w)
            for (size_t j = 0; j != ROUTE_SLOTS; ++j) {
                struct route_series *s = atomic_load_explicit(&all[w]->routes[j], memory_order_acquire);
                int first = 1;
                if (s == NULL)
                    continue;
                for (size_t i = 0; i != w && first; ++i)
                    first = find_route(all[i], s->route) == NULL;
                if (!first)
                    continue;
                unsigned long long counts[NUM_BUCKETS + 1] = {0}, sum_us = 0;
                for (size_t i = w; i != n; ++i) {
                    struct route_series *o = find_route(all[i], s->route);
                    if (o == NULL)
                        continue;
                    struct histogram *hist = h == 0 ? &o->ttfb : &o->duration;
                    for (size_t b = 0; b != NUM_BUCKETS + 1; ++b)
                        counts[b] += LOAD(hist->counts[b]);
                    sum_us += LOAD(hist->sum_us);
                }
                unsigned long long cumulative = 0;
                char le[32], sum[48];
                for (size_t b = 0; b != NUM_BUCKETS + 1; ++b) {
                    cumulative += counts[b];
                    if (b == NUM_BUCKETS)
                        snprintf(le, sizeof(le), "+Inf");
                    else
                        snprintf(le, sizeof(le), "%g", buckets[b]);
                    pgw_buf_append_str(out, hist_names[h]);
                    pgw_buf_append_lit(out, "_bucket{");
                    label(out, "route", s->route, 1);
                    label(out, "le", le, 0);
                    pgw_buf_append_lit(out, "}");
                    number(out, cumulative);
                }
                pgw_buf_append_str(out, hist_names[h]);
                pgw_buf_append_lit(out, "_sum{");
                label(out, "route", s->route, 1);
                int len = snprintf(sum, sizeof(sum), "} %.6f\n", sum_us / 1e6);
                pgw_buf_append(out, sum, len);
                pgw_buf_append_str(out, hist_names[h]);
                pgw_buf_append_lit(out, "_count{");
                label(out, "route", s->route, 1);
                pgw_buf_append_lit(out, "}");
                number(out, cumulative);
            }
    }

    /* gauges the caller measured */
    char tmp[1024];
    int len = snprintf(tmp, sizeof(tmp),
                       "# HELP poe_gateway_requests_in_flight Requests being answered now (streams included).\n"
                       "# TYPE poe_gateway_requests_in_flight gauge\npoe_gateway_requests_in_flight %llu\n"
                       "# HELP poe_gateway_upstream_connections_active Upstream connections carrying a transfer now (idle pooled "
                       "ones are not counted).\n"
                       "# TYPE poe_gateway_upstream_connections_active gauge\npoe_gateway_upstream_connections_active %llu\n"
                       "# HELP poe_gateway_upstream_retries_total Upstream attempts retried before any byte reached a client.\n"
                       "# TYPE poe_gateway_upstream_retries_total counter\npoe_gateway_upstream_retries_total %llu\n"
                       "# HELP poe_gateway_queued_requests Requests waiting for their turn at an upstream key's rate.\n"
                       "# TYPE poe_gateway_queued_requests gauge\npoe_gateway_queued_requests %llu\n"
                       "# HELP poe_gateway_start_time_seconds When the gateway started.\n"
                       "# TYPE poe_gateway_start_time_seconds gauge\npoe_gateway_start_time_seconds %llu\n",
                       (unsigned long long)g->in_flight, (unsigned long long)g->upstream_connections,
                       (unsigned long long)g->upstream_retries, (unsigned long long)g->queued,
                       (unsigned long long)(g->started_at_ms / 1000));
    pgw_buf_append(out, tmp, len);
}

void pgw_metrics_render_usage(pgw_metrics_t *const *all, size_t n, uint64_t started_at_ms, uint64_t now_ms, h2o_buffer_t **out)
{
    char tmp[256];
    time_t since = (time_t)(started_at_ms / 1000), now = (time_t)(now_ms / 1000);
    struct tm tm;
    long long today = (long long)(now_ms / 86400000);

    gmtime_r(&since, &tm);
    strftime(tmp, sizeof(tmp), "{\"since\":\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    pgw_buf_append_str(out, tmp);
    gmtime_r(&now, &tm);
    strftime(tmp, sizeof(tmp), ",\"today\":\"%Y-%m-%d\",\"keys\":{", &tm);
    pgw_buf_append_str(out, tmp);

    /* keys in order of first appearance; each key's models */
    const char *done_keys[TOKEN_SLOTS];
    size_t num_done = 0;
    for (size_t w = 0; w != n; ++w)
        for (size_t j = 0; j != TOKEN_SLOTS; ++j) {
            struct token_series *s = atomic_load_explicit(&all[w]->tokens[j], memory_order_acquire);
            if (s == NULL)
                continue;
            int seen = 0;
            for (size_t k = 0; k != num_done && !seen; ++k)
                seen = same(done_keys[k], s->key);
            if (seen)
                continue;
            done_keys[num_done++] = s->key;
            if (num_done != 1)
                pgw_buf_append_lit(out, ",");
            pgw_json_append_string(out, s->key, strlen(s->key));
            pgw_buf_append_lit(out, ":{");
            /* this key's models */
            const char *done_models[TOKEN_SLOTS];
            size_t num_models = 0;
            for (size_t w2 = 0; w2 != n; ++w2)
                for (size_t j2 = 0; j2 != TOKEN_SLOTS; ++j2) {
                    struct token_series *m = atomic_load_explicit(&all[w2]->tokens[j2], memory_order_acquire);
                    if (m == NULL || !same(m->key, s->key))
                        continue;
                    int mseen = 0;
                    for (size_t k = 0; k != num_models && !mseen; ++k)
                        mseen = same(done_models[k], m->model);
                    if (mseen)
                        continue;
                    done_models[num_models++] = m->model;
                    unsigned long long t[5] = {0}, d[5] = {0};
                    for (size_t i = 0; i != n; ++i) {
                        struct token_series *o = find_token(all[i], s->key, m->model);
                        if (o == NULL)
                            continue;
                        t[0] += LOAD(o->requests), t[1] += LOAD(o->input), t[2] += LOAD(o->output);
                        t[3] += LOAD(o->cache_read), t[4] += LOAD(o->cache_write);
                        if (atomic_load_explicit(&o->day, memory_order_acquire) == today) {
                            d[0] += LOAD(o->day_requests), d[1] += LOAD(o->day_input), d[2] += LOAD(o->day_output);
                            d[3] += LOAD(o->day_cache_read), d[4] += LOAD(o->day_cache_write);
                        }
                    }
                    if (num_models != 1)
                        pgw_buf_append_lit(out, ",");
                    pgw_json_append_string(out, m->model, strlen(m->model));
                    int len = snprintf(tmp, sizeof(tmp),
                                       ":{\"total\":{\"requests\":%llu,\"input_tokens\":%llu,\"output_tokens\":%llu,"
                                       "\"cache_read_input_tokens\":%llu,\"cache_creation_input_tokens\":%llu},",
                                       t[0], t[1], t[2], t[3], t[4]);
                    pgw_buf_append(out, tmp, len);
                    len = snprintf(tmp, sizeof(tmp),
                                   "\"today\":{\"requests\":%llu,\"input_tokens\":%llu,\"output_tokens\":%llu,"
                                   "\"cache_read_input_tokens\":%llu,\"cache_creation_input_tokens\":%llu}}",
                                   d[0], d[1], d[2], d[3], d[4]);
                    pgw_buf_append(out, tmp, len);
                }
            pgw_buf_append_lit(out, "}");
        }
    pgw_buf_append_lit(out, "}}");
}
