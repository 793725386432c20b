/* poe-gateway: MIT licence. Counters and histograms per worker, written without locks by the worker's own thread and
 * summed at read time: the Prometheus text behind /metrics and the JSON behind /usage.
 *
 * How it works
 *
 * Each worker owns four open-addressing tables of series (requests by key, route, model and status; tokens by key and
 * model; latency histograms by route; fallbacks by the route that failed and the one that took over). A series is created
 * once by the worker and published with a release store of its pointer; its labels never change afterwards, and its
 * counters are relaxed atomics that only the worker writes. A reader on another thread walks the slots with acquire
 * loads: no lock, no rehashing under its feet.
 *
 * A client chooses its model name (a wildcard route passes any), so the tables are bounded, and every table the same
 * way (room_for): a table of `max` series has 2 * max slots, so that probes stay short and always end at a free slot.
 *   - A series with its own labels is made while fewer than max - max / 8 series exist.
 *   - Past that, a new label set counts in its key's "(other)" series (the model, and for requests the model alone,
 *     becomes "(other)"; for routes, the route does), while fewer than max - 1 exist: usage stays attributed to its key.
 *   - The last series is the table's own ("(other)" everywhere, status 0), made when it is first needed.
 * So nothing recorded is ever dropped, and a flood of model names costs at most the table's bound.
 *
 * A reader sums the workers' tables into a fresh table of the same kind by the same rule (merge), then renders that one
 * table. Summing is linear in the number of series (a hash lookup each), and what is rendered is bounded by the same
 * `max` whatever the number of workers: every worker may hold `max` series, their union may not.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <h2o/string_.h>
#include "common/json.h"
#include "serve/metrics.h"

#ifndef REQUEST_MAX /* fuzz/fuzz_metrics.c sets small bounds, to reach them in a few records */
#define REQUEST_MAX 1024 /* series: key x route x model x status */
#define TOKEN_MAX 512    /* key x model */
#define ROUTE_MAX 256    /* route, for the histograms */
#define FALLBACK_MAX 256 /* from route x to route */
#endif
#define OTHER "(other)"

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

struct fallback_series {
    char *from, *to;
    atomic_ullong count;
};

struct st_pgw_metrics_t {
    _Atomic(struct request_series *) requests[2 * REQUEST_MAX];
    _Atomic(struct token_series *) tokens[2 * TOKEN_MAX];
    _Atomic(struct route_series *) routes[2 * ROUTE_MAX];
    _Atomic(struct fallback_series *) fallbacks[2 * FALLBACK_MAX];
    atomic_ullong outcomes[PGW_OUTCOME_COUNT]; /* requests by how their answer ended */
    size_t num_requests, num_tokens, num_routes, num_fallbacks; /* series made (the writer's own bookkeeping) */
};

/* How far a new label set has been folded: its own labels, its key's (other) series, the table's (other) series. */
enum fold { OWN, KEY_OTHER, ALL_OTHER };

/* Whether a table of `max` series, `used` of them made, has room for a new series folded as far as `fold`: the table's
 * own (other) series always has, as the others stop short of `max`. */
static int room_for(size_t used, size_t max, enum fold fold)
{
    return fold == ALL_OTHER || used < (fold == OWN ? max - max / 8 : max - 1);
}

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

static char *copy_label(const char *s)
{
    return h2o_strdup(NULL, s, strlen(s)).base;
}

pgw_metrics_t *pgw_metrics_create(void)
{
    pgw_metrics_t *m = h2o_mem_alloc(sizeof(*m));
    memset(m, 0, sizeof(*m));
    return m;
}

void pgw_metrics_destroy(pgw_metrics_t *m)
{
    for (size_t i = 0; i != 2 * REQUEST_MAX; ++i) {
        struct request_series *s = atomic_load(&m->requests[i]);
        if (s != NULL) {
            free(s->key);
            free(s->route);
            free(s->model);
            free(s);
        }
    }
    for (size_t i = 0; i != 2 * TOKEN_MAX; ++i) {
        struct token_series *s = atomic_load(&m->tokens[i]);
        if (s != NULL) {
            free(s->key);
            free(s->model);
            free(s);
        }
    }
    for (size_t i = 0; i != 2 * ROUTE_MAX; ++i) {
        struct route_series *s = atomic_load(&m->routes[i]);
        if (s != NULL) {
            free(s->route);
            free(s);
        }
    }
    for (size_t i = 0; i != 2 * FALLBACK_MAX; ++i) {
        struct fallback_series *s = atomic_load(&m->fallbacks[i]);
        if (s != NULL) {
            free(s->from);
            free(s->to);
            free(s);
        }
    }
    free(m);
}

/*
 * The series for these labels, made when there is room, else the one they fold into (see the opening comment). Never
 * NULL: the table keeps room for its last fold. Writer only (the owning worker, or the reader summing into its own
 * table).
 */
static struct request_series *request_series(pgw_metrics_t *m, const char *key, const char *route, const char *model, int status)
{
    enum fold fold = OWN;
    for (;;) {
        uint64_t h = hash_str(hash_str(hash_str(14695981039346656037ULL, key), route), model) ^ (uint64_t)status;
        size_t slot = h % (2 * REQUEST_MAX);
        struct request_series *s;
        for (; (s = atomic_load_explicit(&m->requests[slot], memory_order_relaxed)) != NULL; slot = (slot + 1) % (2 * REQUEST_MAX))
            if (s->status == status && same(s->key, key) && same(s->route, route) && same(s->model, model))
                return s;
        if (room_for(m->num_requests, REQUEST_MAX, fold)) {
            ++m->num_requests;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->key = copy_label(key);
            s->route = copy_label(route);
            s->model = copy_label(model);
            s->status = status;
            atomic_store_explicit(&m->requests[slot], s, memory_order_release);
            return s;
        }
        if (++fold == KEY_OTHER) {
            model = OTHER;
        } else {
            key = route = model = OTHER;
            status = 0;
        }
    }
}

static struct token_series *token_series(pgw_metrics_t *m, const char *key, const char *model)
{
    enum fold fold = OWN;
    for (;;) {
        size_t slot = hash_str(hash_str(14695981039346656037ULL, key), model) % (2 * TOKEN_MAX);
        struct token_series *s;
        for (; (s = atomic_load_explicit(&m->tokens[slot], memory_order_relaxed)) != NULL; slot = (slot + 1) % (2 * TOKEN_MAX))
            if (same(s->key, key) && same(s->model, model))
                return s;
        if (room_for(m->num_tokens, TOKEN_MAX, fold)) {
            ++m->num_tokens;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->key = copy_label(key);
            s->model = copy_label(model);
            atomic_store_explicit(&m->tokens[slot], s, memory_order_release);
            return s;
        }
        if (++fold == KEY_OTHER)
            model = OTHER;
        else
            key = model = OTHER;
    }
}

static struct route_series *route_series(pgw_metrics_t *m, const char *route)
{
    enum fold fold = OWN;
    for (;;) {
        size_t slot = hash_str(14695981039346656037ULL, route) % (2 * ROUTE_MAX);
        struct route_series *s;
        for (; (s = atomic_load_explicit(&m->routes[slot], memory_order_relaxed)) != NULL; slot = (slot + 1) % (2 * ROUTE_MAX))
            if (same(s->route, route))
                return s;
        if (room_for(m->num_routes, ROUTE_MAX, fold)) {
            ++m->num_routes;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->route = copy_label(route);
            atomic_store_explicit(&m->routes[slot], s, memory_order_release);
            return s;
        }
        /* one label: its key's (other) and the table's are the same series */
        fold = ALL_OTHER;
        route = OTHER;
    }
}

static struct fallback_series *fallback_series(pgw_metrics_t *m, const char *from, const char *to)
{
    enum fold fold = OWN;
    for (;;) {
        size_t slot = hash_str(hash_str(14695981039346656037ULL, from), to) % (2 * FALLBACK_MAX);
        struct fallback_series *s;
        for (; (s = atomic_load_explicit(&m->fallbacks[slot], memory_order_relaxed)) != NULL;
             slot = (slot + 1) % (2 * FALLBACK_MAX))
            if (same(s->from, from) && same(s->to, to))
                return s;
        if (room_for(m->num_fallbacks, FALLBACK_MAX, fold)) {
            ++m->num_fallbacks;
            s = h2o_mem_alloc(sizeof(*s));
            memset(s, 0, sizeof(*s));
            s->from = copy_label(from);
            s->to = copy_label(to);
            atomic_store_explicit(&m->fallbacks[slot], s, memory_order_release);
            return s;
        }
        /* routes come from the configuration, so this takes many reloads: both labels fold at once */
        fold = ALL_OTHER;
        from = to = OTHER;
    }
}

#define ADD(field, v) atomic_fetch_add_explicit(&(field), (v), memory_order_relaxed)

void pgw_metrics_fallback(pgw_metrics_t *m, const char *from, const char *to)
{
    ADD(fallback_series(m, from, to)->count, 1);
}

static void observe(struct histogram *h, double seconds)
{
    size_t i = 0;
    while (i != NUM_BUCKETS && seconds > buckets[i])
        ++i;
    ADD(h->counts[i], 1);
    ADD(h->sum_us, (unsigned long long)(seconds * 1e6));
}

/* Starts a new day in `ts` when `today` is not its day: today's counts restart from zero. Writer only. */
static void roll_day(struct token_series *ts, long long today)
{
    if (atomic_load_explicit(&ts->day, memory_order_relaxed) == today)
        return;
    atomic_store_explicit(&ts->day_requests, 0, memory_order_relaxed);
    atomic_store_explicit(&ts->day_input, 0, memory_order_relaxed);
    atomic_store_explicit(&ts->day_output, 0, memory_order_relaxed);
    atomic_store_explicit(&ts->day_cache_read, 0, memory_order_relaxed);
    atomic_store_explicit(&ts->day_cache_write, 0, memory_order_relaxed);
    atomic_store_explicit(&ts->day, today, memory_order_release);
}

void pgw_metrics_record(pgw_metrics_t *m, const pgw_metrics_request_t *req, uint64_t now_ms)
{
    ADD(request_series(m, req->key, req->route, req->model, req->status)->count, 1);
    ADD(m->outcomes[(unsigned)req->outcome < PGW_OUTCOME_COUNT ? req->outcome : PGW_OUTCOME_OK], 1);
    struct route_series *route = route_series(m, req->route);
    observe(&route->ttfb, req->ttfb_s);
    observe(&route->duration, req->duration_s);
    if (strcmp(req->model, "-") == 0)
        return; /* not routed: no tokens, and no usage line */
    struct token_series *ts = token_series(m, req->key, req->model);
    roll_day(ts, (long long)(now_ms / 86400000));
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

/*
 * Sums the workers' series into a new table, label set by label set, with the same bound: what one table cannot hold
 * folds as it would in a worker's. `today` selects the day counts that still count. The caller destroys the result.
 * Reads other threads' tables: a slot's pointer with an acquire load (the labels it points to were written before its
 * release store and never change), the counters relaxed.
 */
static pgw_metrics_t *merge(pgw_metrics_t *const *all, size_t n, long long today)
{
    pgw_metrics_t *sum = pgw_metrics_create();
    for (size_t w = 0; w != n; ++w) {
        for (size_t j = 0; j != 2 * REQUEST_MAX; ++j) {
            struct request_series *s = atomic_load_explicit(&all[w]->requests[j], memory_order_acquire);
            if (s != NULL)
                ADD(request_series(sum, s->key, s->route, s->model, s->status)->count, LOAD(s->count));
        }
        for (size_t j = 0; j != 2 * TOKEN_MAX; ++j) {
            struct token_series *s = atomic_load_explicit(&all[w]->tokens[j], memory_order_acquire);
            if (s == NULL)
                continue;
            struct token_series *t = token_series(sum, s->key, s->model);
            ADD(t->requests, LOAD(s->requests));
            ADD(t->input, LOAD(s->input));
            ADD(t->output, LOAD(s->output));
            ADD(t->cache_read, LOAD(s->cache_read));
            ADD(t->cache_write, LOAD(s->cache_write));
            if (atomic_load_explicit(&s->day, memory_order_acquire) == today) {
                roll_day(t, today);
                ADD(t->day_requests, LOAD(s->day_requests));
                ADD(t->day_input, LOAD(s->day_input));
                ADD(t->day_output, LOAD(s->day_output));
                ADD(t->day_cache_read, LOAD(s->day_cache_read));
                ADD(t->day_cache_write, LOAD(s->day_cache_write));
            }
        }
        for (size_t j = 0; j != 2 * ROUTE_MAX; ++j) {
            struct route_series *s = atomic_load_explicit(&all[w]->routes[j], memory_order_acquire);
            if (s == NULL)
                continue;
            struct route_series *t = route_series(sum, s->route);
            for (size_t b = 0; b != NUM_BUCKETS + 1; ++b) {
                ADD(t->ttfb.counts[b], LOAD(s->ttfb.counts[b]));
                ADD(t->duration.counts[b], LOAD(s->duration.counts[b]));
            }
            ADD(t->ttfb.sum_us, LOAD(s->ttfb.sum_us));
            ADD(t->duration.sum_us, LOAD(s->duration.sum_us));
        }
        for (size_t j = 0; j != 2 * FALLBACK_MAX; ++j) {
            struct fallback_series *s = atomic_load_explicit(&all[w]->fallbacks[j], memory_order_acquire);
            if (s != NULL)
                ADD(fallback_series(sum, s->from, s->to)->count, LOAD(s->count));
        }
    }
    return sum;
}

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

static const char *const error_types[] = {"invalid_request_error", "authentication_error", "billing_error",   "permission_error",
                                          "not_found_error",       "request_too_large",    "rate_limit_error", "timeout_error",
                                          "overloaded_error",      "api_error"};
#define NUM_ERROR_TYPES (sizeof(error_types) / sizeof(error_types[0]))

/* The index in error_types of an error status. */
static size_t error_type(int status)
{
    switch (status) {
    case 400: return 0;
    case 401: return 1;
    case 402: return 2;
    case 403: return 3;
    case 404: return 4;
    case 413: return 5;
    case 429: return 6;
    case 504: return 7;
    case 529: return 8;
    default: return 9;
    }
}

static void render_histogram(h2o_buffer_t **out, const char *name, const char *route, const struct histogram *hist)
{
    unsigned long long cumulative = 0;
    char le[32], sum[48];
    for (size_t b = 0; b != NUM_BUCKETS + 1; ++b) {
        cumulative += LOAD(hist->counts[b]);
        if (b == NUM_BUCKETS)
            snprintf(le, sizeof(le), "+Inf");
        else
            snprintf(le, sizeof(le), "%g", buckets[b]);
        pgw_buf_append_str(out, name);
        pgw_buf_append_lit(out, "_bucket{");
        label(out, "route", route, 1);
        label(out, "le", le, 0);
        pgw_buf_append_lit(out, "}");
        number(out, cumulative);
    }
    pgw_buf_append_str(out, name);
    pgw_buf_append_lit(out, "_sum{");
    label(out, "route", route, 1);
    int len = snprintf(sum, sizeof(sum), "} %.6f\n", LOAD(hist->sum_us) / 1e6);
    pgw_buf_append(out, sum, len);
    pgw_buf_append_str(out, name);
    pgw_buf_append_lit(out, "_count{");
    label(out, "route", route, 1);
    pgw_buf_append_lit(out, "}");
    number(out, cumulative);
}

void pgw_metrics_render(pgw_metrics_t *const *all, size_t n, const pgw_metrics_gauges_t *g, h2o_buffer_t **out)
{
    pgw_metrics_t *sum = merge(all, n, 0);

    /* requests and errors */
    pgw_buf_append_lit(out, "# HELP poe_gateway_requests_total Requests answered, by key name, route, model and status.\n"
                            "# TYPE poe_gateway_requests_total counter\n");
    unsigned long long errors[NUM_ERROR_TYPES] = {0};
    for (size_t j = 0; j != 2 * REQUEST_MAX; ++j) {
        struct request_series *s = atomic_load_explicit(&sum->requests[j], memory_order_relaxed);
        if (s == NULL)
            continue;
        char status[16];
        snprintf(status, sizeof(status), "%d", s->status);
        pgw_buf_append_lit(out, "poe_gateway_requests_total{");
        label(out, "key", s->key, 1);
        label(out, "route", s->route, 0);
        label(out, "model", s->model, 0);
        label(out, "status", status, 0);
        pgw_buf_append_lit(out, "}");
        number(out, LOAD(s->count));
        if (s->status >= 400)
            errors[error_type(s->status)] += LOAD(s->count);
    }
    pgw_buf_append_lit(out, "# HELP poe_gateway_errors_total Error responses, by Anthropic error type.\n"
                            "# TYPE poe_gateway_errors_total counter\n");
    for (size_t k = 0; k != NUM_ERROR_TYPES; ++k) {
        pgw_buf_append_lit(out, "poe_gateway_errors_total{");
        label(out, "type", error_types[k], 1);
        pgw_buf_append_lit(out, "}");
        number(out, errors[k]);
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
    for (size_t j = 0; j != 2 * TOKEN_MAX; ++j) {
        struct token_series *s = atomic_load_explicit(&sum->tokens[j], memory_order_relaxed);
        if (s == NULL)
            continue;
        unsigned long long counts[4] = {LOAD(s->input), LOAD(s->output), LOAD(s->cache_read), LOAD(s->cache_write)};
        for (size_t k = 0; k != 4; ++k) {
            pgw_buf_append_lit(out, "poe_gateway_tokens_total{");
            label(out, "key", s->key, 1);
            label(out, "model", s->model, 0);
            label(out, "kind", kinds[k], 0);
            pgw_buf_append_lit(out, "}");
            number(out, counts[k]);
        }
    }

    /* fallbacks, by the route that failed and the route that took the request on */
    pgw_buf_append_lit(out, "# HELP poe_gateway_fallbacks_total Requests handed from a route to its fallback before any byte "
                            "reached the client, by route (from) and fallback route (to).\n"
                            "# TYPE poe_gateway_fallbacks_total counter\n");
    for (size_t j = 0; j != 2 * FALLBACK_MAX; ++j) {
        struct fallback_series *s = atomic_load_explicit(&sum->fallbacks[j], memory_order_relaxed);
        if (s == NULL)
            continue;
        pgw_buf_append_lit(out, "poe_gateway_fallbacks_total{");
        label(out, "from", s->from, 1);
        label(out, "to", s->to, 0);
        pgw_buf_append_lit(out, "}");
        number(out, LOAD(s->count));
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
        for (size_t j = 0; j != 2 * ROUTE_MAX; ++j) {
            struct route_series *s = atomic_load_explicit(&sum->routes[j], memory_order_relaxed);
            if (s != NULL)
                render_histogram(out, hist_names[h], s->route, h == 0 ? &s->ttfb : &s->duration);
        }
    }
    pgw_metrics_destroy(sum);

    /* gauges the caller measured */
    char tmp[1536];
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
                       "# HELP poe_gateway_translations_in_progress Large request bodies being translated on the thread pool "
                       "now (queued or running).\n"
                       "# TYPE poe_gateway_translations_in_progress gauge\npoe_gateway_translations_in_progress %llu\n"
                       "# HELP poe_gateway_start_time_seconds When the gateway started.\n"
                       "# TYPE poe_gateway_start_time_seconds gauge\npoe_gateway_start_time_seconds %llu\n",
                       (unsigned long long)g->in_flight, (unsigned long long)g->upstream_connections,
                       (unsigned long long)g->upstream_retries, (unsigned long long)g->queued,
                       (unsigned long long)g->translations, (unsigned long long)(g->started_at_ms / 1000));
    pgw_buf_append(out, tmp, len);
    if (g->shared) {
        len = snprintf(tmp, sizeof(tmp),
                       "# HELP poe_gateway_shared_state_degraded 1 while Redis (gateway.redis) does not answer: rates are "
                       "decided locally, on a share of each limit.\n"
                       "# TYPE poe_gateway_shared_state_degraded gauge\npoe_gateway_shared_state_degraded %d\n"
                       "# HELP poe_gateway_replicas Replicas alive at the last heartbeat Redis answered.\n"
                       "# TYPE poe_gateway_replicas gauge\npoe_gateway_replicas %llu\n",
                       g->shared_degraded, (unsigned long long)g->replicas);
        pgw_buf_append(out, tmp, len);
    }
}

/* Token series in /usage order: by key, then model (bytewise). */
static int usage_order(const void *a, const void *b)
{
    const struct token_series *x = *(const struct token_series *const *)a, *y = *(const struct token_series *const *)b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->model, y->model);
}

static void usage_counts(h2o_buffer_t **out, const char *name, unsigned long long requests, unsigned long long input,
                         unsigned long long output, unsigned long long cache_read, unsigned long long cache_write)
{
    char tmp[256];
    int len = snprintf(tmp, sizeof(tmp),
                       "\"%s\":{\"requests\":%llu,\"input_tokens\":%llu,\"output_tokens\":%llu,\"cache_read_input_tokens\":%llu,"
                       "\"cache_creation_input_tokens\":%llu}",
                       name, requests, input, output, cache_read, cache_write);
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

    /* the summed table holds TOKEN_MAX series at most, by construction */
    pgw_metrics_t *sum = merge(all, n, today);
    struct token_series *rows[TOKEN_MAX];
    size_t num_rows = 0;
    for (size_t j = 0; j != 2 * TOKEN_MAX && num_rows != TOKEN_MAX; ++j) {
        struct token_series *s = atomic_load_explicit(&sum->tokens[j], memory_order_relaxed);
        if (s != NULL)
            rows[num_rows++] = s;
    }
    qsort(rows, num_rows, sizeof(rows[0]), usage_order);
    for (size_t i = 0; i != num_rows; ++i) {
        const struct token_series *s = rows[i];
        int new_key = i == 0 || !same(rows[i - 1]->key, s->key);
        if (new_key) {
            if (i != 0)
                pgw_buf_append_lit(out, "},");
            pgw_json_append_string(out, s->key, strlen(s->key));
            pgw_buf_append_lit(out, ":{");
        } else {
            pgw_buf_append_lit(out, ",");
        }
        pgw_json_append_string(out, s->model, strlen(s->model));
        pgw_buf_append_lit(out, ":{");
        usage_counts(out, "total", LOAD(s->requests), LOAD(s->input), LOAD(s->output), LOAD(s->cache_read), LOAD(s->cache_write));
        pgw_buf_append_lit(out, ",");
        if (LOAD(s->day) == today)
            usage_counts(out, "today", LOAD(s->day_requests), LOAD(s->day_input), LOAD(s->day_output), LOAD(s->day_cache_read),
                         LOAD(s->day_cache_write));
        else
            usage_counts(out, "today", 0, 0, 0, 0, 0);
        pgw_buf_append_lit(out, "}");
    }
    if (num_rows != 0)
        pgw_buf_append_lit(out, "}");
    pgw_buf_append_lit(out, "}}");
    pgw_metrics_destroy(sum);
}
