/* poe-gateway: MIT licence. The server: the process-wide state, the start (listening sockets, TLS, workers) and the
 * signals (graceful stop, reload). */
#ifndef PGW_SERVER_H
#define PGW_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>
#include <h2o.h>
#include "config/config.h"
#include "serve/generation.h"
#include "serve/listener.h"
#include "serve/worker.h"

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

/** Process-wide server; valid between pgw_server_init and the end of pgw_server_run. */
extern pgw_server_t *pgw_server;

/**
 * Builds the h2o configuration, TLS context and one bound listening socket per worker. Errors (address in use, bad
 * certificate, ...) are logged and -1 is returned; nothing then needs disposing. On success the caller registers the
 * paths' handlers on server->hostconf (pgw_handlers_register) before pgw_server_run.
 */
int pgw_server_init(pgw_server_t *server, pgw_config_t *conf);

/**
 * Starts the workers and blocks until SIGTERM/SIGINT and the graceful stop that follows have finished. Returns the
 * process exit code.
 */
int pgw_server_run(pgw_server_t *server);

#endif
