/* poe-gateway: MIT licence. Worker threads, listeners, TLS, per-request bookkeeping and graceful shutdown. */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "catalog.h"
#include "clock.h"
#include "generation.h"
#include "log.h"
#include "routing.h"
#include "server.h"
#include "tls.h"
#include "uvread.h"

#define MODULE_NAME "server"
#define LISTEN_BACKLOG 1024

pgw_server_t *pgw_server;

/* The main thread's loop: signals, and a wake-up from each worker that has finished. */
static uv_loop_t *main_loop;
static uv_signal_t sigterm_handle, sigint_handle, sighup_handle;
static uv_async_t worker_done_handle;
static atomic_uint workers_done;

h2o_iovec_t pgw_req_header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

static void maybe_finish(pgw_worker_t *w)
{
    if (w->stopping && atomic_load_explicit(&w->inflight, memory_order_relaxed) == 0)
        uv_stop(&w->loop);
}

/* Runs when the request's pool is cleared (h2o_dispose_request): the request is over, whatever happened to it. */
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

static void on_request_dispose(void *p)
{
    pgw_request_t *r = p;
    h2o_req_t *req = r->req;
    struct timeval end;
    char peer[INET6_ADDRSTRLEN + 8] = "-";
    struct sockaddr_storage ss;

    gettimeofday(&end, NULL);
    double ms = h2o_timeval_subtract(&req->timestamps.request_begin_at, &end) / 1000.0;
    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sslen != 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
    }
    int version = req->version;
    char usage[160] = "";
    if (r->usage.input_tokens != 0 || r->usage.output_tokens != 0)
        snprintf(usage, sizeof(usage), " in=%lld out=%lld cache_read=%lld cache_write=%lld", r->usage.input_tokens,
                 r->usage.output_tokens, r->usage.cache_read_input_tokens, r->usage.cache_creation_input_tokens);
    /* a query string may carry a key (?key=, ?api_key=): log it only when it names nothing secret-looking */
    int path_len = (int)req->path.len;
    const char *hidden = "";
    if (req->query_at != SIZE_MAX) {
        h2o_iovec_t q = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
        if (h2o_strstr(q.base, q.len, H2O_STRLIT("key")) != SIZE_MAX || h2o_strstr(q.base, q.len, H2O_STRLIT("token")) != SIZE_MAX ||
            h2o_strstr(q.base, q.len, H2O_STRLIT("KEY")) != SIZE_MAX || h2o_strstr(q.base, q.len, H2O_STRLIT("secret")) != SIZE_MAX) {
            path_len = (int)req->query_at;
            hidden = "?[query hidden]";
        }
    }
    char outcome[48] = "";
    if (r->outcome != PGW_OUTCOME_OK)
        snprintf(outcome, sizeof(outcome), " outcome=%s", pgw_outcome_name(r->outcome));
    pgw_log_info("access", "%s \"%.*s %.*s%s HTTP/%s\" %d route=%s key=%s dur_ms=%.1f bytes=%zu%s%s", peer, (int)req->method.len,
                 req->method.base, path_len, req->path.base, hidden, version >= 0x200 ? "2" : version == 0x101 ? "1.1" : "1.0",
                 req->res.status,
                 r->route_name != NULL ? r->route_name : "-", r->key_name != NULL ? r->key_name : "-", ms, req->bytes_sent,
                 usage, outcome);

    pgw_worker_t *w = r->worker;
    double ttfb = h2o_timeval_is_null(&req->timestamps.response_start_at)
                      ? ms / 1000.0
                      : h2o_timeval_subtract(&req->timestamps.request_begin_at, &req->timestamps.response_start_at) / 1e6;
    pgw_metrics_request_t mr = {r->key_name != NULL ? r->key_name : "-", r->route_name != NULL ? r->route_name : "-",
                                r->model != NULL && r->route_name != NULL ? r->model : "-", req->res.status, ttfb, ms / 1000.0,
                                &r->usage, r->outcome};
    pgw_metrics_record(w->metrics, &mr, pgw_now_ms());
    pgw_generation_release(r->gen);
    if (r->client_conn != NULL)
        pgw_conns_request_end(r->client_conn);
    if (atomic_fetch_sub_explicit(&w->inflight, 1, memory_order_relaxed) == 1)
        uv_timer_start(&w->trim_timer, on_trim, TRIM_IDLE_MS, 0);
    maybe_finish(w);
}

pgw_request_t *pgw_request_begin(h2o_req_t *req)
{
    pgw_worker_t *w = H2O_STRUCT_FROM_MEMBER(pgw_worker_t, ctx, req->conn->ctx);
    pgw_request_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_request_dispose);
    *r = (pgw_request_t){req, w, w->gen->conf, w->gen, NULL, NULL, NULL};
    atomic_fetch_add(&w->gen->refs, 1);
    memset(&r->usage, 0, sizeof(r->usage));
    r->model = NULL;
    r->pending_handler = NULL;
    r->route = NULL;
    r->body = NULL;
    r->is_count_tokens = 0;
    r->bucket = NULL;
    r->client_conn = pgw_conns_request_begin(req);
    atomic_fetch_add_explicit(&w->inflight, 1, memory_order_relaxed);
    return r;
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
    w->upstream = pgw_upstream_create(&w->loop, ca_file);
    w->upcheck = pgw_upcheck_create(w->upstream, server->conf);
    w->shaper = pgw_shaper_create(&w->loop);
    w->conns = pgw_conns_create(&w->loop, (uint64_t)(server->conf->idle_timeout * 1000), server->listeners);
    if (w->id == 0)
        pgw_catalogs_start(&w->loop, w->upstream);
    if ((w->listener = pgw_listener_start(server->listeners, &w->loop, server->listen_fds[w->id], on_accept, w)) == NULL) {
        pgw_log_error(MODULE_NAME, "worker %u cannot poll its listening socket", w->id);
        abort();
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);

    atomic_fetch_add(&workers_done, 1);
    uv_async_send(&worker_done_handle);
    /* The thread parks instead of returning, and the process exits around it. What the worker still holds (connections
     * cut at the end of the grace period, the upstream client, libh2o's and OpenSSL's per-thread caches) stays
     * reachable from this thread until the exit, so LeakSanitizer reports only memory that was really lost. */
    for (;;)
        pause();
    return NULL;
}

static int bind_one(const struct addrinfo *ai, unsigned port)
{
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons(port);

    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 ||
        listen(fd, LISTEN_BACKLOG) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Binds one SO_REUSEPORT socket per worker on the same address; with port 0 the first socket picks the port. */
static int bind_listeners(pgw_server_t *server)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int gai;
    if ((gai = getaddrinfo(server->conf->host, NULL, &hints, &res)) != 0) {
        pgw_log_error(MODULE_NAME, "cannot resolve listen address %s: %s", server->conf->host, gai_strerror(gai));
        return -1;
    }
    server->port = server->conf->port;
    for (unsigned i = 0; i != server->num_workers; ++i) {
        int fd = bind_one(res, server->port);
        if (fd < 0) {
            pgw_log_error(MODULE_NAME, "cannot listen on %s:%u: %s", server->conf->host, server->port, strerror(errno));
            for (unsigned j = 0; j != i; ++j)
                close(server->listen_fds[j]);
            freeaddrinfo(res);
            return -1;
        }
        if (server->port == 0) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            getsockname(fd, (struct sockaddr *)&ss, &len);
            server->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        server->listen_fds[i] = fd;
    }
    freeaddrinfo(res);
    return 0;
}

int pgw_server_init(pgw_server_t *server, pgw_config_t *conf)
{
    memset(server, 0, sizeof(*server));
    server->conf = conf;
    server->started_at = pgw_now_ms();
    server->num_workers = conf->threads;
    if (server->num_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        server->num_workers = n > 0 ? (unsigned)n : 1;
    }

    /* the first generation: the server keeps a reference for good, so the start-up configuration outlives reloads */
    pthread_mutex_init(&server->current_mutex, NULL);
    server->current = server->boot = pgw_generation_create(conf, 1);
    atomic_fetch_add(&server->boot->refs, 1);
    pgw_catalogs_init(conf);
    h2o_config_init(&server->globalconf);
    server->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("poe-gateway"));
    server->globalconf.max_request_entity_size = conf->max_body_bytes;
    server->globalconf.http1.req_timeout = (uint64_t)(conf->idle_timeout * 1000);
    server->globalconf.http2.idle_timeout = (uint64_t)(conf->idle_timeout * 1000);
    server->globalconf.http2.graceful_shutdown_timeout = (uint64_t)(conf->graceful_timeout * 1000);
    server->hostconf = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pgw_routing_register(server->hostconf);

    if (conf->tls_cert_file != NULL && (server->ssl_ctx = pgw_tls_create_ctx(conf)) == NULL)
        goto Error;
    if (!pgw_uvread_fix_active() && server->ssl_ctx != NULL)
        pgw_log_warn(MODULE_NAME, "libh2o's TLS reads are not routed through the gateway's fix (src/uvread.c): a TLS "
                                  "connection can be dropped when a read fills h2o's buffer exactly");
    server->listen_fds = h2o_mem_alloc(sizeof(*server->listen_fds) * server->num_workers);
    if (bind_listeners(server) != 0)
        goto Error;
    server->listeners = pgw_listeners_create(conf->max_connections, server->num_workers);
    pgw_server = server;
    return 0;

Error:
    if (server->ssl_ctx != NULL)
        SSL_CTX_free(server->ssl_ctx);
    free(server->listen_fds);
    h2o_config_dispose(&server->globalconf);
    return -1;
}

static void begin_shutdown(const char *why)
{
    if (atomic_exchange(&pgw_server->shutting_down, 1)) {
        pgw_log_warn(MODULE_NAME, "%s again: exiting now", why);
        exit(1);
    }
    pgw_log_info(MODULE_NAME, "%s: stopping; in-flight requests have %.0f s to finish", why, pgw_server->conf->graceful_timeout);
    for (unsigned i = 0; i != pgw_server->num_workers; ++i)
        uv_async_send(&pgw_server->workers[i].wake);
}

static void on_signal(uv_signal_t *handle, int signum)
{
    begin_shutdown(signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* SIGHUP (`systemctl reload`, `docker compose kill -s HUP gateway`): re-read the configuration. */
static void on_sighup(uv_signal_t *handle, int signum)
{
    if (!atomic_load(&pgw_server->shutting_down))
        pgw_generation_reload(pgw_server);
}

static void on_worker_done(uv_async_t *async)
{
    if (atomic_load(&workers_done) != pgw_server->num_workers)
        return;
    uv_close((uv_handle_t *)&sigterm_handle, NULL);
    uv_close((uv_handle_t *)&sigint_handle, NULL);
    uv_close((uv_handle_t *)&sighup_handle, NULL);
    uv_close((uv_handle_t *)&worker_done_handle, NULL);
}

int pgw_server_run(pgw_server_t *server)
{
    main_loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);
    uv_signal_init(main_loop, &sigterm_handle);
    uv_signal_start(&sigterm_handle, on_signal, SIGTERM);
    uv_signal_init(main_loop, &sigint_handle);
    uv_signal_start(&sigint_handle, on_signal, SIGINT);
    uv_signal_init(main_loop, &sighup_handle);
    uv_signal_start(&sighup_handle, on_sighup, SIGHUP);
    uv_async_init(main_loop, &worker_done_handle, on_worker_done);

    server->workers = h2o_mem_alloc(sizeof(*server->workers) * server->num_workers);
    memset(server->workers, 0, sizeof(*server->workers) * server->num_workers);
    for (unsigned i = 0; i != server->num_workers; ++i) {
        pgw_worker_t *w = server->workers + i;
        w->server = server;
        w->id = i;
        w->metrics = pgw_metrics_create();
        /* The loop and its wake handle are made here, before the thread runs, so that a signal arriving at any time
         * finds a handle to send to; the worker's own thread is the only one that runs the loop. */
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_async_init(&w->loop, &w->reload, on_reload);
        w->reload.data = w;
        w->gen = pgw_generation_acquire(server);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pgw_log_error(MODULE_NAME, "cannot start worker thread %u", i);
            exit(1);
        }
    }
    pgw_log_info(MODULE_NAME, "listening on %s://%s:%u (%u workers)", server->ssl_ctx != NULL ? "https" : "http",
                 server->conf->host, server->port, server->num_workers);

    uv_run(main_loop, UV_RUN_DEFAULT);
    pgw_log_info(MODULE_NAME, "stopped");
    return 0;
}
