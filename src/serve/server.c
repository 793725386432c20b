/* poe-gateway: MIT licence. The server: start-up, the main thread's loop and the signals.
 *
 * pgw_server_init runs before any worker: the first configuration generation, libh2o's configuration, the TLS context
 * (src/serve/tls.c) and one bound SO_REUSEPORT socket per worker, after a probe without SO_REUSEPORT, so that an address
 * in use, also by another gateway of the same user, fails the start. pgw_server_run prepares and starts the workers
 * (src/serve/worker.c), then runs the main thread's loop, which does nothing but wait for
 * signals: SIGTERM or SIGINT begins the graceful stop (a second one exits at once), SIGHUP reloads the configuration
 * (src/serve/generation.c). Once every worker has signalled that its loop has ended, the handles close and the loop returns.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "upstream/catalog.h"
#include "common/clock.h"
#include "serve/generation.h"
#include "common/log.h"
#include "ledger/sqlite.h"
#include "serve/ledger_share.h"
#include "serve/server.h"
#include "serve/tls.h"
#include "serve/uvread.h"
#include "serve/worker.h"

#define MODULE_NAME "server"
#define LISTEN_BACKLOG 1024

pgw_server_t *pgw_server;

/* The main thread's loop: signals, and a wake-up from each worker that has finished. */
static uv_loop_t *main_loop;
static uv_signal_t sigterm_handle, sigint_handle, sighup_handle;

/* A TCP socket on `ai`'s address and `port`, bound; with `reuseport` also SO_REUSEPORT and listening (a worker's
 * listener), without it only bound (the probe). Returns the descriptor, or -1 with errno set. */
static int bind_one(const struct addrinfo *ai, unsigned port, int reuseport)
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
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) ||
        bind(fd, (struct sockaddr *)&ss, ai->ai_addrlen) != 0 || (reuseport && listen(fd, LISTEN_BACKLOG) != 0)) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* The start-up lock for `port`: an abstract Unix socket (its name is per network namespace, as ports are, needs no file,
 * and goes with the process), held while this process probes and binds, so that two gateways started at the same
 * moment cannot both pass the probe before either listens. The holder binds in milliseconds, so a second process waits
 * up to two seconds for it, then probes. Returns the lock's descriptor, or -1 (logged).
 * See docs/threading.md#listening-with-so_reuseport. */
static int take_bind_lock(unsigned port)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int len = snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "poe-gateway-bind-%u", port);
    socklen_t addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        pgw_log_error(MODULE_NAME, "cannot create the start-up lock: %s", strerror(errno));
        return -1;
    }
    for (unsigned tries = 0; bind(fd, (struct sockaddr *)&sun, addrlen) != 0; ++tries) {
        if (errno != EADDRINUSE || tries == 200) {
            pgw_log_error(MODULE_NAME, "cannot take the start-up lock for port %u: %s", port,
                          errno == EADDRINUSE ? "another poe-gateway has been starting on it for 2 s" : strerror(errno));
            close(fd);
            return -1;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    }
    return fd;
}

/* Binds one SO_REUSEPORT socket per worker on the same address; with port 0 the first socket picks the port (the kernel
 * never picks one that SO_REUSEPORT sockets already hold). SO_REUSEPORT lets any process of the same user join, so
 * before binding a fixed port the process takes the start-up lock and binds a probe without SO_REUSEPORT: the kernel
 * refuses it while anyone listens on the address, which is what makes a second gateway exit 1 instead of taking part
 * of the first one's connections (docs/threading.md#listening-with-so_reuseport). */
static int bind_listeners(pgw_server_t *server)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int gai, lock = -1;
    if ((gai = getaddrinfo(server->conf->host, NULL, &hints, &res)) != 0) {
        pgw_log_error(MODULE_NAME, "cannot resolve listen address %s: %s", server->conf->host, gai_strerror(gai));
        return -1;
    }
    server->port = server->conf->port;
    if (server->port != 0) {
        if ((lock = take_bind_lock(server->port)) < 0)
            goto Error;
        int probe = bind_one(res, server->port, 0);
        if (probe < 0) {
            int err = errno;
            pgw_log_error(MODULE_NAME, "cannot listen on %s:%u: %s%s", server->conf->host, server->port, strerror(err),
                          err == EADDRINUSE ? " (another program, or another poe-gateway, listens there)" : "");
            goto Error;
        }
        close(probe);
    }
    for (unsigned i = 0; i != server->num_workers; ++i) {
        int fd = bind_one(res, server->port, 1);
        if (fd < 0) {
            pgw_log_error(MODULE_NAME, "cannot listen on %s:%u: %s", server->conf->host, server->port, strerror(errno));
            for (unsigned j = 0; j != i; ++j)
                close(server->listen_fds[j]);
            goto Error;
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
    if (lock >= 0)
        close(lock);
    freeaddrinfo(res);
    return 0;

Error:
    if (lock >= 0)
        close(lock);
    freeaddrinfo(res);
    return -1;
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
    pgw_catalogs_init(conf, conf->ledger_enabled);
    if (conf->ledger_enabled) {
        char path[4096], err[512];
        pgw_store_t *store;
        if (pgw_sqlite_path(conf, path, sizeof(path)) != 0) {
            pgw_log_error(MODULE_NAME, "the ledger has no place: set gateway.ledger.path, gateway.state_dir or HOME");
            return -1;
        }
        if ((store = pgw_sqlite_store_open(path, conf->ledger_retention_days, conf->ledger_max_bytes, err, sizeof(err))) == NULL) {
            pgw_log_error(MODULE_NAME, "%s (gateway.ledger)", err);
            return -1;
        }
        if (conf->redis_host != NULL) { /* replicas: every ledger gets every replica's records (src/serve/ledger_share.c) */
            char state[4200];
            snprintf(state, sizeof(state), "%s.replica", path);
            store = pgw_ledger_share_wrap(store, state);
        }
        pgw_store_set(store);
        pgw_log_info(MODULE_NAME, "ledger: %s", path);
    }
    h2o_config_init(&server->globalconf);
    server->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("poe-gateway"));
    server->globalconf.max_request_entity_size = conf->max_body_bytes;
    server->globalconf.http1.req_timeout = (uint64_t)(conf->idle_timeout * 1000);
    server->globalconf.http2.idle_timeout = (uint64_t)(conf->idle_timeout * 1000);
    server->globalconf.http2.graceful_shutdown_timeout = (uint64_t)(conf->graceful_timeout * 1000);
    server->hostconf = h2o_config_register_host(&server->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);

    if (conf->tls_cert_file != NULL && (server->ssl_ctx = pgw_tls_create_ctx(conf)) == NULL)
        goto Error;
    if (!pgw_uvread_fix_active() && server->ssl_ctx != NULL)
        pgw_log_warn(MODULE_NAME, "libh2o's TLS reads are not routed through the gateway's fix (src/serve/uvread.c): a TLS "
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
    if (atomic_load(&pgw_server->workers_done) != pgw_server->num_workers)
        return;
    uv_close((uv_handle_t *)&sigterm_handle, NULL);
    uv_close((uv_handle_t *)&sigint_handle, NULL);
    uv_close((uv_handle_t *)&sighup_handle, NULL);
    uv_close((uv_handle_t *)&pgw_server->worker_done, NULL);
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
    uv_async_init(main_loop, &server->worker_done, on_worker_done);

    server->workers = h2o_mem_alloc(sizeof(*server->workers) * server->num_workers);
    memset(server->workers, 0, sizeof(*server->workers) * server->num_workers);
    /* Every worker is prepared before the first starts: a worker answering /metrics or /usage reads every worker's
     * metrics, and what the main thread wrote before pthread_create is what a new thread is sure to see. */
    for (unsigned i = 0; i != server->num_workers; ++i)
        pgw_worker_init(server->workers + i, server, i);
    for (unsigned i = 0; i != server->num_workers; ++i) {
        if (pgw_worker_start(server->workers + i) != 0) {
            pgw_log_error(MODULE_NAME, "cannot start worker thread %u", i);
            exit(1);
        }
    }
    pgw_log_info(MODULE_NAME, "listening on %s://%s:%u (%u workers)", server->ssl_ctx != NULL ? "https" : "http",
                 server->conf->host, server->port, server->num_workers);

    uv_run(main_loop, UV_RUN_DEFAULT);
    pgw_store_t *store = pgw_store_get();
    if (store != NULL) {
        pgw_store_set(NULL);
        store->ops->close(store); /* what is queued is written */
    }
    pgw_log_info(MODULE_NAME, "stopped");
    return 0;
}
