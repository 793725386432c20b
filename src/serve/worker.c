/* poe-gateway: MIT licence. Worker threads: each a complete server on its own libuv loop, from start to graceful stop.
 *
 * The main thread prepares each worker (pgw_worker_init: the loop, the async handles it signals, the metrics, a reference
 * to the current generation) and starts its thread (pgw_worker_start). The thread blocks every signal, builds the rest on
 * its loop (h2o context, upstream client, health cache, Redis client, shaper, connection table, listener) and runs the loop. Every
 * request accepted by the worker is served on that loop; pgw_worker_request_begun / _ended count them in `inflight`.
 *
 * Graceful stop: the main thread signals `wake`; the worker closes its listener, asks libh2o to wind its connections
 * down, and stops its loop when its last request ends or when the grace timer (graceful_timeout) fires first. Then it
 * counts itself in server->workers_done, signals server->worker_done and parks. A reload signals `reload`: the worker
 * takes the new generation for its new requests.
 */
#include <malloc.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include "upstream/catalog.h"
#include "serve/generation.h"
#include "common/log.h"
#include "serve/server.h"
#include "serve/ledger_share.h"
#include "serve/shared.h"
#include "serve/worker.h"
#include "ledger/reconcile.h"

#define MODULE_NAME "server" /* the tag these lines had before the workers left server.c */

static void maybe_finish(pgw_worker_t *w)
{
    if (w->stopping && atomic_load_explicit(&w->inflight, memory_order_relaxed) == 0)
        uv_stop(&w->loop);
}

/*
 * After a busy spell glibc keeps what the requests freed in each worker's arena: about 175 MB after 1,000 streams
 * (bench/README.md, Soak), held for as long as the gateway then sits idle. When a worker's last request ends it arms
 * this timer; if every worker is still idle when it fires, malloc_trim hands the free pages back to the kernel. The
 * last worker to go idle does it; a trim of a small heap costs microseconds.
 */
#define TRIM_IDLE_MS 2000

static void on_trim(uv_timer_t *timer)
{
    pgw_worker_t *w = timer->data;
    for (unsigned i = 0; i < w->server->num_workers; i++)
        if (atomic_load_explicit(&w->server->workers[i].inflight, memory_order_relaxed) != 0)
            return;
    malloc_trim(0);
}

static void on_accept(pgw_listener_t *listener, int fd, void *data)
{
    pgw_worker_t *w = data;
    h2o_socket_t *sock = pgw_conns_adopt(w->conns, fd);
    if (sock != NULL)
        h2o_accept(&w->accept_ctx, sock);
}

static void on_grace_timeout(uv_timer_t *timer)
{
    pgw_worker_t *w = timer->data;
    size_t inflight = atomic_load_explicit(&w->inflight, memory_order_relaxed);
    if (inflight != 0)
        pgw_log_warn(MODULE_NAME, "worker %u: %zu request(s) still running after the grace period; closing them", w->id,
                     inflight);
    uv_stop(&w->loop);
}

/* The main thread asks this worker to stop: accept nothing new, let what runs finish within the grace period. */
static void on_wake(uv_async_t *async)
{
    pgw_worker_t *w = async->data;
    if (w->stopping)
        return;
    w->stopping = 1;
    pgw_listener_close(w->listener);
    h2o_context_request_shutdown(&w->ctx);
    uv_timer_start(&w->grace_timer, on_grace_timeout, (uint64_t)(w->server->conf->graceful_timeout * 1000), 0);
    maybe_finish(w);
}

/* The main thread loaded a new configuration: new requests on this worker get it from now on. */
static void on_reload(uv_async_t *async)
{
    pgw_worker_t *w = async->data;
    pgw_generation_t *old = w->gen;
    w->gen = pgw_generation_acquire(w->server);
    pgw_generation_release(old);
    pgw_upcheck_update(w->upcheck, w->gen->conf);
    if (w->id == 0)
        pgw_catalogs_start(&w->loop, w->upstream);
}

static void *worker_main(void *arg)
{
    pgw_worker_t *w = arg;
    pgw_server_t *server = w->server;
    sigset_t all;

    /* signals are the main thread's business */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);

    h2o_context_init(&w->ctx, &w->loop, &server->globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = server->globalconf.hosts;
    w->accept_ctx.ssl_ctx = server->ssl_ctx;

    uv_timer_init(&w->loop, &w->grace_timer);
    w->grace_timer.data = w;
    uv_timer_init(&w->loop, &w->trim_timer);
    w->trim_timer.data = w;
    uv_unref((uv_handle_t *)&w->trim_timer);
    const char *ca_file = server->conf->ssl_ca_file != NULL ? server->conf->ssl_ca_file : getenv("SSL_CERT_FILE");
    w->upstream = pgw_upstream_create(&w->loop, ca_file, server->conf->upstream_connections, !server->conf->upstream_client_curl);
    w->upcheck = pgw_upcheck_create(w->upstream, server->conf);
    w->redis = pgw_redis_create(&w->loop, server->conf, pgw_shared_scripts);
    w->shaper = pgw_shaper_create(&w->loop, w->redis);
    w->conns = pgw_conns_create(&w->loop, (uint64_t)(server->conf->idle_timeout * 1000), server->listeners);
    if (w->id == 0) {
        pgw_catalogs_start(&w->loop, w->upstream);
        pgw_reconcile_start(&w->loop, w->upstream, server->conf);
        pgw_shared_heartbeat_start(&w->loop, w->redis);
        pgw_ledger_share_start(pgw_store_get(), &w->loop, w->redis);
    }
    if ((w->listener = pgw_listener_start(server->listeners, &w->loop, server->listen_fds[w->id], on_accept, w)) == NULL) {
        pgw_log_error(MODULE_NAME, "worker %u cannot poll its listening socket", w->id);
        abort();
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);

    atomic_fetch_add(&server->workers_done, 1);
    uv_async_send(&server->worker_done);
    /* The thread parks instead of returning, and the process exits around it. What the worker still holds (connections
     * cut at the end of the grace period, the upstream client, libh2o's and OpenSSL's per-thread caches) stays
     * reachable from this thread until the exit, so LeakSanitizer reports only memory that was really lost. */
    for (;;)
        pause();
    return NULL;
}

void pgw_worker_init(pgw_worker_t *w, pgw_server_t *server, unsigned id)
{
    w->server = server;
    w->id = id;
    w->metrics = pgw_metrics_create();
    /* The loop and its wake handle are made here, before the thread runs, so that a signal arriving at any time
     * finds a handle to send to; the worker's own thread is the only one that runs the loop. */
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_async_init(&w->loop, &w->reload, on_reload);
    w->reload.data = w;
    w->gen = pgw_generation_acquire(server);
}

int pgw_worker_start(pgw_worker_t *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w) != 0 ? -1 : 0;
}

void pgw_worker_request_begun(pgw_worker_t *w)
{
    atomic_fetch_add_explicit(&w->inflight, 1, memory_order_relaxed);
}

void pgw_worker_request_ended(pgw_worker_t *w)
{
    if (atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed) == 1)
        uv_timer_start(&w->trim_timer, on_trim, TRIM_IDLE_MS, 0);
    maybe_finish(w);
}
