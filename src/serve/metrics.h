/* poe-gateway: MIT licence. Counters and histograms per worker, written without locks by the worker's own thread and
 * summed at read time: the Prometheus text behind /metrics and the JSON behind /usage. */
#ifndef PGW_METRICS_H
#define PGW_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <h2o/memory.h>
#include "common/outcome.h"
#include "common/usage.h"

typedef struct st_pgw_metrics_t pgw_metrics_t;

/** What one finished request contributes. Strings are copied when a new series is made. */
typedef struct st_pgw_metrics_request_t {
    const char *key;   /* caller's name ("master", a key name) or "-" */
    const char *route; /* route model_name or "-" */
    const char *model; /* the client's model when routed, else "-" */
    int status;
    double ttfb_s;     /* to the first response byte handed to h2o */
    double duration_s;
    const pgw_usage_t *usage;
    pgw_outcome_t outcome;
} pgw_metrics_request_t;

pgw_metrics_t *pgw_metrics_create(void);

/** Frees every series. Nothing may record into or read `m` any more. */
void pgw_metrics_destroy(pgw_metrics_t *m);

/**
 * Records a finished request. Called only by the owning worker's thread. Every table is bounded: past its bound, new
 * label sets count in their key's "(other)" series, and the last series is "(other)" for everything (src/serve/metrics.c).
 */
void pgw_metrics_record(pgw_metrics_t *m, const pgw_metrics_request_t *req, uint64_t now_ms);

/**
 * Counts one fallback (docs/request-path.md#fallbacks): a request handed from the route `from` to the route `to`
 * (their model_names), for poe_gateway_fallbacks_total. Called only by the owning worker's thread; bounded like the
 * other tables.
 */
void pgw_metrics_fallback(pgw_metrics_t *m, const char *from, const char *to);

/**
 * Appends the Prometheus text exposition of the sum of `all` (one per worker) to `out`, with the gauges the caller
 * measured (in-flight requests, upstream sockets, upstream retries, queue length, translations on the thread pool).
 */
typedef struct st_pgw_metrics_gauges_t {
    uint64_t in_flight;
    uint64_t upstream_connections; /* with a transfer on them */
    uint64_t upstream_retries;
    uint64_t started_at_ms;
    uint64_t queued;   /* requests waiting for their upstream key's rate */
    uint64_t translations; /* large bodies being translated on the thread pool */
    int shared;            /* gateway.redis is set: the two below are rendered */
    int shared_degraded;   /* some worker's Redis client is not up: decisions are local */
    uint64_t replicas;     /* replicas alive at the last heartbeat answered */
} pgw_metrics_gauges_t;
void pgw_metrics_render(pgw_metrics_t *const *all, size_t n, const pgw_metrics_gauges_t *g, h2o_buffer_t **out);

/**
 * Appends the /usage JSON (per key and model, sorted, since start and today, UTC) for the sum of `all`: at most as many
 * rows as one worker's table holds, however many workers there are; past that, a key's further models are summed under
 * "(other)" as in a worker's table.
 */
void pgw_metrics_render_usage(pgw_metrics_t *const *all, size_t n, uint64_t started_at_ms, uint64_t now_ms, h2o_buffer_t **out);

#endif
