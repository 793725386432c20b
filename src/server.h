/* poe-gateway: MIT licence. Worker threads, listeners, TLS, per-request bookkeeping and graceful shutdown. */
#ifndef PGW_SERVER_H
#define PGW_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>
#include <h2o.h>
#include "config.h"
#include "conns.h"
#include "generation.h"
#include "listener.h"
#include "metrics.h"
#include "outcome.h"
#include "ratelimit.h"
#include "reqbody.h"
#include "shaper.h"
#include "upcheck.h"
#include "upstream.h"
#include "worker.h"
#include "usage.h"

typedef struct st_pgw_server_t pgw_server_t;

struct st_pgw_server_t {
    pgw_config_t *conf;       /* the configuration the server started with: listeners, TLS, threads (never reloaded) */
    pgw_generation_t *current; /* the latest configuration (guarded by current_mutex) */
    pgw_generation_t *boot;    /* the first generation, kept for good: `conf` belongs to it */
    struct {
        const char *host; /* --host, or NULL */
        int port_set, threads_set;
        unsigned port, threads;
    } cli; /* command-line overrides, applied again to a reloaded file */
    pthread_mutex_t current_mutex;
    h2o_globalconf_t globalconf;
    h2o_hostconf_t *hostconf;
    SSL_CTX *ssl_ctx;         /* NULL without gateway.tls */
    int *listen_fds;          /* one bound socket per worker, handed over to the worker's loop (owned array) */
    pgw_listeners_t *listeners; /* the cap on client connections, shared by every worker's listener */
    unsigned num_workers;
    pgw_worker_t *workers;    /* owned array */
    unsigned port;            /* the bound port (differs from conf->port when that is 0) */
    atomic_int shutting_down; /* readiness answers 503 once set */
    atomic_uint workers_done; /* workers whose loop has ended */
    uv_async_t worker_done;   /* on the main thread's loop: signalled by each worker whose loop has ended */
    uint64_t started_at;      /* wall clock, ms */
};

/**
 * Per-request state every handler starts with. Allocated from the request pool as a shared entry whose dispose
 * writes the access-log line and lets a graceful stop know the request has ended.
 */
typedef struct st_pgw_request_t {
    h2o_req_t *req;
    pgw_worker_t *worker;
    const pgw_config_t *conf;   /* gen->conf */
    pgw_generation_t *gen;      /* the configuration this request began with (a reference) */
    const char *key_name;   /* who called, for the log ("master", ...); never the key; NULL before auth */
    const pgw_key_t *key;   /* the named key that called; NULL for the master key and before auth */
    const char *route_name; /* the route's model_name once routed (points into conf) */
    pgw_usage_t usage;      /* tokens the upstream reported, for the log and metrics */
    const char *model;      /* the client's model once routed (request pool), for metrics and usage */
    int (*pending_handler)(struct st_pgw_request_t *r); /* the route handler waiting for a tailnet whois */
    const pgw_route_t *route;      /* once routed */
    pgw_reqbody_t *body;           /* the inspected body (request pool), kept for a request that waits in the shaper */
    int is_count_tokens;
    pgw_shaper_bucket_t *bucket;   /* the upstream key's bucket, for Poe's limit signals */
    pgw_conn_t *client_conn;       /* the client connection's entry in worker->conns; NULL when it has none */
    pgw_outcome_t outcome;         /* how the answer ended (the first end that was noted counts) */
} pgw_request_t;

/** Process-wide server; valid between pgw_server_init and the end of pgw_server_run. */
extern pgw_server_t *pgw_server;

/**
 * Builds the h2o configuration, TLS context and one bound listening socket per worker. Errors (address in use, bad
 * certificate, ...) are logged and -1 is returned; nothing then needs disposing.
 */
int pgw_server_init(pgw_server_t *server, pgw_config_t *conf);

/**
 * Starts the workers and blocks until SIGTERM/SIGINT and the graceful stop that follows have finished. Returns the
 * process exit code.
 */
int pgw_server_run(pgw_server_t *server);

/**
 * Creates the per-request state for `req` (called first by every route handler).
 */
pgw_request_t *pgw_request_begin(h2o_req_t *req);

/**
 * Finds the value of a request header by its lower-case name (any header, not only h2o tokens). Returns
 * {NULL, 0} when absent.
 */
h2o_iovec_t pgw_req_header(h2o_req_t *req, const char *name, size_t len);

#endif
