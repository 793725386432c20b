/* poe-gateway: MIT licence. One worker's connection to Redis (gateway.redis): hiredis's async API on the worker's loop,
 * a deadline on every answer, and reconnection, so that a Redis that is down or slow never holds a request.
 *
 * How it works. Each worker has one client (pgw_redis_create), made when the worker starts. A connection goes through
 * CONNECTING (the host looked up on libuv's thread pool, the TCP connect, then AUTH, SELECT and a SCRIPT LOAD per script, then
 * PING, all queued at once) to UP when PING answers. Only an UP client takes commands: pgw_redis_command refuses them otherwise,
 * and the caller decides locally at once (docs/threading.md#shared-state-across-replicas), so no request ever waits for a Redis
 * that is not there.
 *
 * Every command is a `struct call` in `pending`, in the order sent, which is the order Redis answers; one timer is armed
 * for the oldest one's deadline (gateway.redis_timeout for commands, at least a second while connecting). When it
 * fires with the oldest still unanswered, Redis is too slow to be useful: every pending call is answered NULL now, the
 * connection is dropped (hiredis answers its queued callbacks NULL once more, which find their call answered) and a new
 * one is tried a second later. A refused or broken connection ends the same way. hiredis's own answer to a call
 * frees it; `answered` says whether its callback has run already.
 *
 * hiredis 0.14 drives the socket through five hooks; they are implemented here on a uv_poll_t rather than with the
 * libuv adapter hiredis ships, because that adapter ignores the error status libuv reports when a connect is refused
 * (POLLERR), and hiredis would then wait for ever for the connect to finish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include <h2o/linklist.h>
#include <h2o/memory.h>
#include <h2o/string_.h>
#include <hiredis/async.h>
#include "common/clock.h"
#include "common/log.h"
#include "serve/redis.h"

#define MODULE_NAME "redis"
#define RETRY_MS 1000
#define CONNECT_DEADLINE_MS 1000

atomic_uint pgw_redis_clients_down;
static __thread pgw_redis_t *thread_client;

struct call {
    h2o_linklist_t link; /* in the client's pending while its connection lasts; hiredis holds the call until it answers */
    pgw_redis_t *redis;
    pgw_redis_cb cb; /* NULL for the connection's own commands (probe below) */
    void *data;
    uint64_t deadline_ms;
    unsigned conn_id; /* which connection sent it */
    int answered;     /* cb has run (timed out) */
    int probe;        /* one of the connection's own commands: a failure drops the connection */
    int last_probe;   /* the PING: its answer makes the client UP */
};

struct st_pgw_redis_t {
    uv_loop_t *loop;
    char *host; /* owned */
    unsigned port, db;
    uint64_t timeout_ms;
    const char *const *scripts;
    redisAsyncContext *ac; /* NULL between connections */
    unsigned conn_id;
    int up;
    int logged_down; /* the loss is logged once per outage */
    h2o_linklist_t pending;
    uv_timer_t deadline_timer;
    uv_timer_t retry_timer;
    uv_getaddrinfo_t resolve; /* the host's address, looked up on the thread pool before each connection */
    int resolving;
};

/* the socket hooks hiredis calls */

struct events {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    int mask;
};

static void on_poll(uv_poll_t *poll, int status, int mask)
{
    struct events *e = poll->data;
    if (status < 0) /* POLLERR: let hiredis find the error itself (a failed connect, a reset) */
        mask = e->mask;
    if (e->ac != NULL && (mask & UV_READABLE) != 0)
        redisAsyncHandleRead(e->ac);
    if (e->ac != NULL && (mask & UV_WRITABLE) != 0)
        redisAsyncHandleWrite(e->ac);
}

static void update_poll(struct events *e, int add, int del)
{
    e->mask = (e->mask | add) & ~del;
    if (e->mask != 0)
        uv_poll_start(&e->poll, e->mask, on_poll);
    else
        uv_poll_stop(&e->poll);
}

static void add_read(void *p)
{
    update_poll(p, UV_READABLE, 0);
}

static void del_read(void *p)
{
    update_poll(p, 0, UV_READABLE);
}

static void add_write(void *p)
{
    update_poll(p, UV_WRITABLE, 0);
}

static void del_write(void *p)
{
    update_poll(p, 0, UV_WRITABLE);
}

static void on_events_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *p)
{
    struct events *e = p;
    e->ac = NULL;
    uv_close((uv_handle_t *)&e->poll, on_events_closed);
}

static int attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct events *e = h2o_mem_alloc(sizeof(*e));
    memset(e, 0, sizeof(*e));
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return -1;
    }
    e->poll.data = e;
    e->ac = ac;
    ac->ev.data = e;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

/* the client's state */

static void set_up(pgw_redis_t *r, int up)
{
    if (r->up == up)
        return;
    r->up = up;
    if (up) {
        atomic_fetch_sub(&pgw_redis_clients_down, 1);
        pgw_log_info(MODULE_NAME, "connected to %s:%u/%u: shared state in use", r->host, r->port, r->db);
        r->logged_down = 0;
    } else {
        atomic_fetch_add(&pgw_redis_clients_down, 1);
    }
}

static void start_connect(pgw_redis_t *r);

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

/* The connection is gone or useless: answer what waits, drop it, try again in a second. */
static void drop(pgw_redis_t *r, const char *why)
{
    if (!r->logged_down) {
        pgw_log_warn(MODULE_NAME, "%s:%u: %s; deciding locally until it is back", r->host, r->port, why);
        r->logged_down = 1;
    }
    set_up(r, 0);
    while (!h2o_linklist_is_empty(&r->pending)) { /* out of the list: hiredis still holds them, and frees them */
        struct call *c = H2O_STRUCT_FROM_MEMBER(struct call, link, r->pending.next);
        h2o_linklist_unlink(&c->link);
        if (!c->answered) {
            c->answered = 1;
            if (c->cb != NULL)
                c->cb(c->data, NULL);
        }
    }
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    ++r->conn_id;
    if (ac != NULL)
        redisAsyncFree(ac); /* hiredis answers its queue (NULL); those calls are answered already and freed there */
    uv_timer_stop(&r->deadline_timer);
    if (!uv_is_active((uv_handle_t *)&r->retry_timer))
        uv_timer_start(&r->retry_timer, on_retry, RETRY_MS, 0);
}

static void on_deadline(uv_timer_t *t)
{
    pgw_redis_t *r = t->data;
    if (h2o_linklist_is_empty(&r->pending))
        return;
    struct call *head = H2O_STRUCT_FROM_MEMBER(struct call, link, r->pending.next);
    uint64_t now = pgw_now_ms();
    if (head->deadline_ms > now) {
        uv_timer_start(&r->deadline_timer, on_deadline, head->deadline_ms - now, 0);
        return;
    }
    drop(r, r->up ? "no answer within gateway.redis_timeout" : "no answer while connecting");
}

/* hiredis's answer to a call (NULL when the connection went): exactly once per call. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct call *c = privdata;
    pgw_redis_t *r = c->redis;
    redisReply *rep = reply;
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    if (!c->answered) {
        c->answered = 1;
        if (c->probe) {
            if (c->conn_id == r->conn_id) {
                if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
                    char why[256];
                    snprintf(why, sizeof(why), "%s", rep == NULL ? "connection lost" : rep->str);
                    free(c);
                    drop(r, why);
                    return;
                }
                if (c->last_probe)
                    set_up(r, 1);
            }
        } else {
            /* scripts flushed (SCRIPT FLUSH, a failover to a replica without them): a new connection loads them again */
            int noscript = rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
            unsigned conn_id = c->conn_id;
            if (c->cb != NULL)
                c->cb(c->data, rep);
            if (noscript && conn_id == r->conn_id && r->ac != NULL) {
                free(c);
                drop(r, "the scripts are gone (NOSCRIPT)");
                return;
            }
        }
    }
    free(c);
}

static int send_argv(pgw_redis_t *r, int argc, const char **argv, const size_t *argvlen, pgw_redis_cb cb, void *data,
                     uint64_t timeout_ms, int probe)
{
    struct call *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->redis = r;
    c->cb = cb;
    c->data = data;
    c->deadline_ms = pgw_now_ms() + timeout_ms;
    c->conn_id = r->conn_id;
    c->probe = probe;
    if (redisAsyncCommandArgv(r->ac, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free(c);
        return -1;
    }
    h2o_linklist_insert(&r->pending, &c->link);
    if (!uv_is_active((uv_handle_t *)&r->deadline_timer))
        uv_timer_start(&r->deadline_timer, on_deadline, timeout_ms, 0);
    return 0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    pgw_redis_t *r = ac->data;
    if (status != REDIS_OK && r->ac == ac) {
        /* hiredis frees the context after this returns, and answers its queue NULL */
        char why[256];
        snprintf(why, sizeof(why), "cannot connect: %s", ac->errstr);
        r->ac = NULL;
        drop(r, why);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    pgw_redis_t *r = ac->data;
    if (r->ac == ac) { /* hiredis frees the context after this returns */
        r->ac = NULL;
        drop(r, "connection lost");
    }
}

/* Connects to `ip` (a resolved address: hiredis would resolve a name with a blocking call on the loop). */
static void connect_to(pgw_redis_t *r, const char *ip)
{
    uint64_t probe_ms = r->timeout_ms > CONNECT_DEADLINE_MS ? r->timeout_ms : CONNECT_DEADLINE_MS;
    redisAsyncContext *ac = redisAsyncConnect(ip, (int)r->port);
    if (ac == NULL || ac->err != 0) {
        char why[256];
        snprintf(why, sizeof(why), "cannot connect: %s", ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        drop(r, why);
        return;
    }
    if (attach(ac, r->loop) != 0) {
        redisAsyncFree(ac);
        drop(r, "cannot poll the socket");
        return;
    }
    ac->data = r;
    r->ac = ac;
    ++r->conn_id;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);

    /* the connection's own commands, queued at once; the PING's answer makes the client up */
    const char *password = getenv("REDIS_PASSWORD"), *user = getenv("REDIS_USERNAME");
    if (password != NULL && *password != '\0') {
        if (user != NULL && *user != '\0')
            send_argv(r, 3, (const char *[]){"AUTH", user, password}, NULL, NULL, NULL, probe_ms, 1);
        else
            send_argv(r, 2, (const char *[]){"AUTH", password}, NULL, NULL, NULL, probe_ms, 1);
    }
    char db[16];
    snprintf(db, sizeof(db), "%u", r->db);
    send_argv(r, 2, (const char *[]){"SELECT", db}, NULL, NULL, NULL, probe_ms, 1);
    for (const char *const *s = r->scripts; s != NULL && *s != NULL; ++s)
        send_argv(r, 3, (const char *[]){"SCRIPT", "LOAD", *s}, NULL, NULL, NULL, probe_ms, 1);
    if (send_argv(r, 1, (const char *[]){"PING"}, NULL, NULL, NULL, probe_ms, 1) == 0) {
        struct call *ping = H2O_STRUCT_FROM_MEMBER(struct call, link, r->pending.prev);
        ping->last_probe = 1;
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pgw_redis_t *r = req->data;
    char ip[INET6_ADDRSTRLEN] = "";
    r->resolving = 0;
    if (status == 0 && res != NULL)
        uv_ip_name(res->ai_addr, ip, sizeof(ip));
    if (res != NULL)
        uv_freeaddrinfo(res);
    if (ip[0] == '\0') {
        char why[256];
        snprintf(why, sizeof(why), "cannot resolve the host: %s", status != 0 ? uv_strerror(status) : "no address");
        drop(r, why);
        return;
    }
    connect_to(r, ip);
}

/* Resolves the host on libuv's thread pool, then connects. */
static void start_connect(pgw_redis_t *r)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (r->resolving)
        return;
    r->resolve.data = r;
    if (uv_getaddrinfo(r->loop, &r->resolve, on_resolved, r->host, NULL, &hints) != 0) {
        drop(r, "cannot resolve the host");
        return;
    }
    r->resolving = 1;
}

pgw_redis_t *pgw_redis_create(uv_loop_t *loop, const pgw_config_t *conf, const char *const *scripts)
{
    if (conf->redis_host == NULL)
        return NULL;
    pgw_redis_t *r = h2o_mem_alloc(sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->loop = loop;
    r->host = h2o_strdup(NULL, conf->redis_host, SIZE_MAX).base;
    r->port = conf->redis_port;
    r->db = conf->redis_db;
    r->timeout_ms = (uint64_t)(conf->redis_timeout * 1000);
    if (r->timeout_ms == 0)
        r->timeout_ms = 1;
    r->scripts = scripts;
    h2o_linklist_init_anchor(&r->pending);
    uv_timer_init(loop, &r->deadline_timer);
    r->deadline_timer.data = r;
    uv_timer_init(loop, &r->retry_timer);
    r->retry_timer.data = r;
    /* neither timer keeps the loop alive: a stopping worker ends its loop when its requests are done */
    uv_unref((uv_handle_t *)&r->deadline_timer);
    uv_unref((uv_handle_t *)&r->retry_timer);
    atomic_fetch_add(&pgw_redis_clients_down, 1); /* down until the first PING answers */
    thread_client = r;
    start_connect(r);
    return r;
}

pgw_redis_t *pgw_redis_of_thread(void)
{
    return thread_client;
}

int pgw_redis_up(pgw_redis_t *r)
{
    return r != NULL && r->up;
}

int pgw_redis_command(pgw_redis_t *r, int argc, const char **argv, const size_t *argvlen, pgw_redis_cb cb, void *data)
{
    if (!pgw_redis_up(r))
        return -1;
    return send_argv(r, argc, argv, argvlen, cb, data, r->timeout_ms, 0);
}

void pgw_redis_script_sha(const char *script, char *sha)
{
    unsigned char d[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), d);
    for (size_t i = 0; i != sizeof(d); ++i)
        snprintf(sha + i * 2, 3, "%02x", d[i]);
}
