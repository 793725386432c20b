/* poe-gateway: MIT licence. Accepting client connections: each worker's listening socket, the process-wide cap on open
 * client connections (gateway.max_connections), the descriptor limit, and what is done when descriptors run out.
 *
 * Why not uv_listen. libuv 1.44's accept loop (uv__server_io) accepts until the kernel says EAGAIN and cannot be paused
 * short of closing the socket. On EMFILE it closes a spare descriptor of its own, accepts and closes what is queued, and
 * opens the spare again; with two worker threads sharing one descriptor table, the other thread can take the freed
 * number first, the spare is lost, and from then on every accept fails with EMFILE and goes to the callback, in a loop
 * that never returns to the event loop: the worker spins, never reads its connections again (they stay in CLOSE-WAIT
 * once their clients leave), and never sees the signal to stop. So each worker polls its listening socket itself
 * (uv_poll_t) and calls accept4 itself: at most ACCEPT_BATCH accepts per wake-up, and polling can be stopped and started
 * again while the socket, and the connections queued in it, stay as they are.
 *
 * The cap. `open` counts the client connections of every worker whose descriptor is not closed yet; a listener takes a
 * slot before each accept (never past `max`) and the slot is given back when the connection's descriptor is closed
 * (pgw_listeners_release, from src/serve/conns.c). The cap is one for the whole process rather than a share per worker: the
 * kernel spreads connections over the SO_REUSEPORT sockets by a hash of their addresses, so a per-worker share would
 * keep a connection waiting on a full worker while the other has room. At the cap a listener stops polling and puts
 * itself on the `waiting` list; new connections wait in the kernel's listen queue (up to its backlog, then the kernel
 * drops SYNs and clients retry), and are accepted in order as room comes. A health probe behind them is answered once
 * they are. Accepting and closing at the cap instead would turn a burst into failures for clients that only had to
 * wait, the probes included; closing the socket would reset everything queued in it. This is also what h2o's own
 * server does at its max-connections (it stops reading the listener and wakes every thread when a connection closes).
 * A release that finds listeners waiting wakes each through its uv_async_t. A listener re-checks for room right after
 * it puts itself on the list, so a release between its failed take and its insertion is not missed (both sides are
 * sequentially consistent: either the release sees the listener waiting or the listener sees the slot).
 *
 * The default cap is the descriptor limit (its soft value, raised to the hard one at start) less what the rest of the
 * process needs: 64 for the process as a whole (stdio, the main loop and its signal pipes, configuration and key files
 * read on a reload) and 32 per worker (its loop's epoll and eventfd, its listener and the two spares, curl's wake-up
 * pair and resolver sockets, and upstream connections: Poe is reached over HTTP/2, streams multiplexed over a few
 * connections per upstream host and worker). When that reserve is more than half the limit, the cap is half the limit.
 * Upstreams that take a connection per request (cleartext h2c, HTTP/1.1) can need more at high concurrency (up to
 * gateway.upstream_connections each): then lower gateway.max_connections or raise the limit.
 *
 * Out of descriptors below the cap (EMFILE, ENFILE: the cap set above what the limit allows, or descriptors taken by
 * something else). Queued connections cannot be served, so they are closed promptly rather than left hanging: the
 * listener closes its spare descriptor, accepts and closes up to SHED_MAX queued connections with the one it freed, and
 * opens the spare again; then it stops polling for RETRY_MS (nginx pauses its accepts the same way) so the loop can run
 * the work that frees descriptors. A spare lost to another thread is opened again at the next retry; meanwhile only the
 * pause applies. Other accept failures that are not about one connection (ENOBUFS, ENOMEM, anything unexpected) get the
 * pause without the shedding.
 *
 * Logging. Reaching the cap and running short of descriptors are each logged when they begin, at most once a minute for
 * the whole process, never per accept; the end of a shortage that was logged is logged with the count of connections
 * closed unserved.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <h2o.h>
#include "serve/listener.h"
#include "common/log.h"

#define MODULE_NAME "listener"
#define ACCEPT_BATCH 16 /* accepts per wake-up before the loop runs other work (h2o's server takes 16 too) */
#define SHED_MAX 1024   /* queued connections closed per retry when out of descriptors */
#define RETRY_MS 100    /* the pause in accepting after a failure for want of descriptors or memory */
#define LOG_EVERY_MS 60000
#define RESERVE_BASE 64       /* descriptors kept for the process as a whole: stdio, the main loop, config and key files */
#define RESERVE_PER_WORKER 32 /* and a worker's: its loop, listener and spares, upstream connections, resolver sockets */
#define ASSUMED_NOFILE 1024   /* the limit assumed when it cannot be read */

struct st_pgw_listeners_t {
    size_t max;                           /* the cap on client connections (gateway.max_connections or its default) */
    atomic_size_t open;                   /* client connections holding a slot: accepted, descriptor not closed yet */
    pthread_mutex_t mutex;                /* guards `waiting` */
    h2o_linklist_t waiting;               /* listeners paused at the cap (pgw_listener_t.waiting) */
    atomic_size_t num_waiting;            /* their number; changed under the mutex, read without it */
    atomic_uint_fast64_t cap_logged_at;   /* uv_hrtime() in ms when reaching the cap was last logged; 0 = never */
    atomic_int short_of_fds;              /* an accept failed for want of resources and none has succeeded since */
    atomic_int shortage_logged;           /* the current shortage was logged */
    atomic_uint_fast64_t short_logged_at; /* when a shortage was last logged (ms); 0 = never */
    atomic_uint_fast64_t short_since;     /* when the current shortage began (ms) */
    atomic_size_t shed;                   /* connections closed unserved in the current shortage */
};

struct st_pgw_listener_t {
    pgw_listeners_t *shared;
    int fd;                 /* the listening socket (owned) */
    int spare;              /* a descriptor kept for shedding when out of descriptors; -1 while there is none */
    uv_poll_t poll;         /* readability of `fd`; stopped while paused */
    uv_timer_t retry;       /* ends a pause after a failed accept */
    uv_async_t room;        /* signalled (from any thread) when a slot frees up while this listener waits */
    h2o_linklist_t waiting; /* in shared->waiting while paused at the cap (guarded by shared->mutex) */
    pgw_listener_accept_cb cb;
    void *data;
    unsigned handles; /* libuv handles not closed yet: the listener is freed when none is left */
    unsigned polling : 1;
    unsigned closing : 1;
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* 1 when nothing has been logged through `last` for LOG_EVERY_MS: the caller logs, and `last` now says so */
static int may_log(atomic_uint_fast64_t *last)
{
    uint64_t now = now_ms(), prev = atomic_load(last);
    return (prev == 0 || now - prev >= LOG_EVERY_MS) && atomic_compare_exchange_strong(last, &prev, now);
}

static int open_spare(void)
{
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0 ? fd : open("/", O_RDONLY | O_CLOEXEC);
}

/* Raises the soft descriptor limit to the hard one; returns the soft limit in force, 0 when it cannot be read. */
static size_t raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        pgw_log_warn(MODULE_NAME, "cannot read the descriptor limit (RLIMIT_NOFILE): %s", strerror(errno));
        return 0;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t old = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
            pgw_log_info(MODULE_NAME, "raised the descriptor limit (RLIMIT_NOFILE) from %llu to %llu", (unsigned long long)old,
                         (unsigned long long)rl.rlim_cur);
        } else {
            pgw_log_warn(MODULE_NAME, "cannot raise the descriptor limit (RLIMIT_NOFILE) from %llu to %llu: %s",
                         (unsigned long long)old, (unsigned long long)rl.rlim_max, strerror(errno));
            rl.rlim_cur = old;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > SIZE_MAX / 2)
        return SIZE_MAX / 2;
    return (size_t)rl.rlim_cur;
}

size_t pgw_listeners_default_max(size_t nofile, unsigned num_workers)
{
    size_t reserve = RESERVE_BASE + (size_t)RESERVE_PER_WORKER * num_workers;
    size_t max = nofile > 2 * reserve ? nofile - reserve : nofile / 2;
    return max != 0 ? max : 1;
}

pgw_listeners_t *pgw_listeners_create(size_t max_connections, unsigned num_workers)
{
    pgw_listeners_t *s = h2o_mem_alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mutex, NULL);
    h2o_linklist_init_anchor(&s->waiting);

    size_t nofile = raise_nofile_limit(), limit = nofile != 0 ? nofile : ASSUMED_NOFILE;
    size_t fit = pgw_listeners_default_max(limit, num_workers);
    if (max_connections == 0) {
        s->max = fit;
        pgw_log_info(MODULE_NAME,
                     "accepting up to %zu client connections (the default for a descriptor limit of %zu%s, the "
                     "rest kept for upstream connections and files; gateway.max_connections sets it)",
                     s->max, limit, nofile != 0 ? "" : " (assumed)");
    } else {
        s->max = max_connections;
        pgw_log_info(MODULE_NAME, "accepting up to %zu client connections (gateway.max_connections)", s->max);
        if (max_connections > fit)
            pgw_log_warn(MODULE_NAME,
                         "gateway.max_connections %zu is more than the descriptor limit (%zu%s) leaves room for "
                         "(%zu, keeping some for upstream connections and files): past that, new connections are "
                         "closed unserved; raise the limit (ulimit -n, LimitNOFILE=, docker run --ulimit nofile=) "
                         "or lower gateway.max_connections",
                         max_connections, limit, nofile != 0 ? "" : ", assumed", fit);
    }
    return s;
}

static int take_slot(pgw_listeners_t *s)
{
    size_t n = atomic_load(&s->open);
    do {
        if (n >= s->max)
            return 0;
    } while (!atomic_compare_exchange_weak(&s->open, &n, n + 1));
    return 1;
}

void pgw_listeners_release(pgw_listeners_t *s)
{
    atomic_fetch_sub(&s->open, 1);
    if (atomic_load(&s->num_waiting) == 0)
        return;
    pthread_mutex_lock(&s->mutex);
    while (!h2o_linklist_is_empty(&s->waiting)) {
        pgw_listener_t *l = H2O_STRUCT_FROM_MEMBER(pgw_listener_t, waiting, s->waiting.next);
        h2o_linklist_unlink(&l->waiting);
        atomic_fetch_sub(&s->num_waiting, 1);
        uv_async_send(&l->room);
    }
    pthread_mutex_unlock(&s->mutex);
}

static void unlink_waiting(pgw_listener_t *l)
{
    pgw_listeners_t *s = l->shared;
    pthread_mutex_lock(&s->mutex);
    if (h2o_linklist_is_linked(&l->waiting)) {
        h2o_linklist_unlink(&l->waiting);
        atomic_fetch_sub(&s->num_waiting, 1);
    }
    pthread_mutex_unlock(&s->mutex);
}

static void on_readable(uv_poll_t *poll, int status, int events);

static void start_polling(pgw_listener_t *l)
{
    if (l->polling || l->closing)
        return;
    uv_poll_start(&l->poll, UV_READABLE, on_readable);
    l->polling = 1;
}

static void stop_polling(pgw_listener_t *l)
{
    if (!l->polling)
        return;
    uv_poll_stop(&l->poll);
    l->polling = 0;
}

/* At the cap: stop polling until a release wakes this listener through `room`. */
static void wait_for_room(pgw_listener_t *l)
{
    pgw_listeners_t *s = l->shared;
    stop_polling(l);
    pthread_mutex_lock(&s->mutex);
    if (!h2o_linklist_is_linked(&l->waiting)) {
        h2o_linklist_insert(&s->waiting, &l->waiting);
        atomic_fetch_add(&s->num_waiting, 1);
    }
    pthread_mutex_unlock(&s->mutex);
    if (may_log(&s->cap_logged_at))
        pgw_log_warn(MODULE_NAME,
                     "reached gateway.max_connections (%zu client connections): new connections wait in the listen "
                     "queue until one closes",
                     s->max);
    /* a connection may have closed after the failed take and before the insertion, when its release saw nobody waiting */
    if (atomic_load(&s->open) < s->max)
        uv_async_send(&l->room);
}

static void on_room(uv_async_t *async)
{
    pgw_listener_t *l = async->data;
    if (l->closing)
        return;
    unlink_waiting(l);
    if (!uv_is_active((uv_handle_t *)&l->retry))
        start_polling(l);
}

/* Closes up to SHED_MAX queued connections through the descriptor the spare frees. */
static size_t shed(pgw_listener_t *l)
{
    size_t n = 0;
    if (l->spare < 0)
        return 0;
    close(l->spare);
    l->spare = -1;
    for (unsigned i = 0; i != SHED_MAX; ++i) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            break;
        }
        close(fd);
        ++n;
    }
    l->spare = open_spare();
    return n;
}

static void on_retry(uv_timer_t *timer)
{
    pgw_listener_t *l = timer->data;
    if (l->spare < 0)
        l->spare = open_spare();
    start_polling(l);
}

/* An accept failed for want of descriptors or memory, or for a reason that is not about one connection. */
static void pause_accepting(pgw_listener_t *l, int err)
{
    pgw_listeners_t *s = l->shared;
    int out_of_fds = err == EMFILE || err == ENFILE;

    stop_polling(l);
    if (!atomic_exchange(&s->short_of_fds, 1)) {
        atomic_store(&s->short_since, now_ms());
        if (may_log(&s->short_logged_at)) {
            atomic_store(&s->shortage_logged, 1);
            if (out_of_fds)
                pgw_log_warn(MODULE_NAME,
                             "out of file descriptors (accept: %s) with %zu client connections open: closing "
                             "queued connections unserved and retrying every %d ms; raise the descriptor limit "
                             "(ulimit -n, LimitNOFILE=, docker run --ulimit nofile=) or lower "
                             "gateway.max_connections",
                             strerror(err), atomic_load(&s->open), RETRY_MS);
            else
                pgw_log_warn(MODULE_NAME, "cannot accept connections (%s) with %zu client connections open: retrying every %d ms",
                             strerror(err), atomic_load(&s->open), RETRY_MS);
        }
    }
    if (out_of_fds)
        atomic_fetch_add(&s->shed, shed(l));
    uv_timer_start(&l->retry, on_retry, RETRY_MS, 0);
}

static void end_shortage(pgw_listeners_t *s)
{
    if (!atomic_exchange(&s->short_of_fds, 0))
        return;
    size_t shed = atomic_exchange(&s->shed, 0);
    if (atomic_exchange(&s->shortage_logged, 0))
        pgw_log_info(MODULE_NAME, "accepting connections again after %.1f s; %zu queued connection(s) were closed unserved",
                     (now_ms() - atomic_load(&s->short_since)) / 1000.0, shed);
}

static void on_readable(uv_poll_t *poll, int status, int events)
{
    pgw_listener_t *l = poll->data;
    pgw_listeners_t *s = l->shared;

    if (status != 0) {
        pause_accepting(l, -status);
        return;
    }
    for (unsigned i = 0; i != ACCEPT_BATCH; ++i) {
        if (!take_slot(s)) {
            wait_for_room(l);
            return;
        }
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            pgw_listeners_release(s);
            switch (err) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            /* the connection went away while queued, a firewall refused it, or a network error that accept(2) passes on
             * for it: try the next */
            case EINTR:
            case ECONNABORTED:
            case EPERM:
            case EPROTO:
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;
            default:
                pause_accepting(l, err);
                return;
            }
        }
        if (atomic_load_explicit(&s->short_of_fds, memory_order_relaxed))
            end_shortage(s);
        l->cb(l, fd, l->data);
    }
}

pgw_listener_t *pgw_listener_start(pgw_listeners_t *listeners, uv_loop_t *loop, int fd, pgw_listener_accept_cb cb, void *data)
{
    pgw_listener_t *l = h2o_mem_alloc(sizeof(*l));
    *l = (pgw_listener_t){.shared = listeners, .fd = fd, .spare = open_spare(), .cb = cb, .data = data};
    /* uv_poll_init makes the socket non-blocking: an accept never waits */
    if (uv_poll_init(loop, &l->poll, fd) != 0) {
        if (l->spare >= 0)
            close(l->spare);
        free(l);
        return NULL;
    }
    l->poll.data = l;
    uv_timer_init(loop, &l->retry);
    l->retry.data = l;
    uv_async_init(loop, &l->room, on_room);
    l->room.data = l;
    l->handles = 3;
    start_polling(l);
    return l;
}

static void on_handle_close(uv_handle_t *handle)
{
    pgw_listener_t *l = handle->data;
    if (--l->handles == 0)
        free(l);
}

void pgw_listener_close(pgw_listener_t *l)
{
    if (l->closing)
        return;
    l->closing = 1;
    /* off the list first: once unlinked, no other thread signals `room` */
    unlink_waiting(l);
    stop_polling(l);
    uv_close((uv_handle_t *)&l->poll, on_handle_close);
    uv_close((uv_handle_t *)&l->retry, on_handle_close);
    uv_close((uv_handle_t *)&l->room, on_handle_close);
    /* at once, not in a close callback: a worker that stops its loop next never runs those, and the kernel would go on
     * queueing connections on a socket nobody accepts from (libuv has stopped polling it in uv_close) */
    close(l->fd);
    if (l->spare >= 0)
        close(l->spare);
    l->fd = l->spare = -1;
}
