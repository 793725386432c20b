/* poe-gateway: MIT licence. Worker threads: each a complete server on its own libuv loop, from start to graceful stop. */
#ifndef PGW_WORKER_H
#define PGW_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>
#include <h2o.h>
#include "serve/conns.h"
#include "serve/generation.h"
#include "serve/listener.h"
#include "serve/metrics.h"
#include "serve/redis.h"
#include "serve/shaper.h"
#include "upstream/upcheck.h"
#include "upstream/upstream.h"

struct st_pgw_server_t;

/**
 * One worker thread: its own libuv loop, h2o context and SO_REUSEPORT listener. Everything here is touched only by the
 * worker's own thread, except `wake` and `reload`, which the main thread signals, `metrics`, which the main thread sets
 * before any worker starts, and the atomics /metrics reads from other workers.
 */
typedef struct st_pgw_worker_t {
    struct st_pgw_server_t *server;
    unsigned id;
    pthread_t thread;
    uv_loop_t loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    pgw_listener_t *listener; /* accepts on this worker's listening socket */
    uv_async_t wake;        /* signalled by the main thread to start the graceful stop */
    uv_timer_t grace_timer; /* ends the graceful stop when in-flight requests outlast it */
    uv_timer_t trim_timer;  /* armed when this worker's last request ends: hands freed heap back once all are idle */
    atomic_size_t inflight; /* requests begun and not yet disposed (written by this worker only) */
    pgw_metrics_t *metrics; /* this worker's counters, summed by /metrics and /usage */
    _Atomic(pgw_upstream_t *) upstream; /* this worker's client to Poe (atomic: /metrics reads it from other workers) */
    pgw_upcheck_t *upcheck;   /* this worker's cache of upstream reachability */
    pgw_generation_t *gen;    /* the configuration new requests on this worker get (a reference) */
    uv_async_t reload;        /* signalled by the main thread after a reload */
    _Atomic(pgw_shaper_t *) shaper; /* this worker's lanes of requests waiting for their upstream key's rate (atomic: as upstream) */
    pgw_redis_t *redis;       /* this worker's client of the shared state (gateway.redis), or NULL (src/serve/redis.c) */
    pgw_conns_t *conns;       /* this worker's client connections, cut when no request moves for idle_timeout */
    int stopping;
} pgw_worker_t;

/**
 * Prepares worker `id` of `server` on the main thread, before its thread starts: the loop, the two async handles other
 * threads signal (`wake`, `reload`), the metrics and a reference to the current generation, so that a signal arriving at
 * any time finds a handle to send to. `w` is zeroed memory that lives as long as the process. Every worker is prepared
 * before any starts: a worker answering /metrics or /usage reads every worker's `metrics`.
 */
void pgw_worker_init(pgw_worker_t *w, struct st_pgw_server_t *server, unsigned id);

/**
 * Starts the worker's thread, which builds the rest on its loop, serves until a graceful stop has ended, then counts
 * itself in server->workers_done, signals server->worker_done and parks until the process exits. Returns 0, or -1 when
 * the thread cannot be made.
 */
int pgw_worker_start(pgw_worker_t *w);

/**
 * Counts a request begun on the worker (called on the worker's thread).
 */
void pgw_worker_request_begun(pgw_worker_t *w);

/**
 * A request counted by pgw_worker_request_begun has ended (called on the worker's thread): the worker's last request
 * arms the heap-trim timer, and during a graceful stop the loop ends.
 */
void pgw_worker_request_ended(pgw_worker_t *w);

#endif
