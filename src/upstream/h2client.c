/* poe-gateway: MIT licence. The gateway's own HTTP/2 client for https:// upstreams: an attempt engine over h2conn.c.
 *
 * How it works. Each worker has one client; the client keeps, per upstream host (host, port, and whether certificates
 * are verified), up to HOST_CONNECTIONS connections (h2conn.c), as libcurl did, not counting those a GOAWAY is
 * draining. An attempt takes a stream on the first connection with room for one (the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS, capped); when none has room another connection is opened, and past the cap the
 * attempt waits in the host's queue until a stream ends, a connection goes or one is told to go (on_room, on_close).
 * An attempt that opens a connection is engaged at once (its connect and handshake count against `timeout`); one that
 * waits, for the queue or for another's connection, is engaged when its request is sent.
 *
 * A host whose server does not select h2 by ALPN is marked: its attempts come back with PGW_ATTEMPT_ELSEWHERE and the
 * transfer starts them on libcurl (pgw_h2client_accepts says no from then on). So are all attempts when a proxy is
 * set in the environment, which libcurl honours and this client does not.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <h2o.h>
#include <openssl/err.h>
#include "common/log.h"
#include "upstream/h2conn.h"
#include "upstream/h2client.h"

#define MODULE_NAME "upstream"
#define HOST_CONNECTIONS 4 /* connections per https:// host and worker: HTTP/2 multiplexes */
#define MAX_DRAINING 12    /* and, besides them, connections that finish their streams after a GOAWAY */
#define QUICK_REPLAYS 5    /* a refused stream is sent again at once this many times per attempt (on_refused) */

struct host {
    pgw_h2client_t *client;
    h2o_linklist_t link; /* in client->hosts */
    char *name, *port;
    int verify;
    int no_h2; /* the server did not select h2: libcurl carries its attempts */
    pgw_h2conn_t *conns[HOST_CONNECTIONS + MAX_DRAINING];
    size_t num_conns;
    h2o_linklist_t queue; /* attempts waiting for a stream (struct xfer) */
};

/* The engine's state for a transfer (pgw_attempt_t.engine_data). */
struct xfer {
    pgw_attempt_t *a;
    struct host *host;
    const char *authority, *path; /* in `split` */
    pgw_h2stream_t *stream;    /* the attempt's stream, or NULL */
    int refusals;              /* streams of this attempt the server refused */
    h2o_linklist_t queue_link; /* in host->queue while waiting */
    char split[];              /* the URL's parts (pgw_h2client_split_url) */
};

struct st_pgw_h2client_t {
    pgw_attempt_engine_t engine; /* first: the operations given to transfers */
    uv_loop_t *loop;
    SSL_CTX *ssl_ctx;
    int proxied; /* a proxy is set in the environment */
    h2o_linklist_t hosts;
    atomic_ullong sockets;
};

int pgw_h2client_split_url(const char *url, char *buf, const char **host, const char **port, const char **authority,
                           const char **path)
{
    if (strncasecmp(url, "https://", 8) != 0)
        return -1;
    const char *p = url + 8, *auth_end = p + strcspn(p, "/?#");
    if (auth_end == p || memchr(p, '@', auth_end - p) != NULL) /* no host, or credentials (libcurl's business) */
        return -1;
    char *w = buf;
    *authority = w;
    memcpy(w, p, auth_end - p);
    w += auth_end - p;
    *w++ = '\0';
    const char *h = p, *h_end, *port_at = NULL;
    if (*h == '[') {
        const char *close = memchr(h, ']', auth_end - h);
        if (close == NULL)
            return -1;
        ++h;
        h_end = close;
        if (close + 1 != auth_end) {
            if (close[1] != ':')
                return -1;
            port_at = close + 2;
        }
    } else {
        const char *colon = memchr(h, ':', auth_end - h);
        h_end = colon != NULL ? colon : auth_end;
        if (colon != NULL)
            port_at = colon + 1;
    }
    if (h_end == h)
        return -1;
    *host = w;
    memcpy(w, h, h_end - h);
    w += h_end - h;
    *w++ = '\0';
    *port = w;
    if (port_at != NULL && port_at != auth_end) {
        for (const char *c = port_at; c != auth_end; ++c)
            if (*c < '0' || *c > '9')
                return -1;
        memcpy(w, port_at, auth_end - port_at);
        w += auth_end - port_at;
    } else {
        memcpy(w, "443", 3);
        w += 3;
    }
    *w++ = '\0';
    *path = w;
    if (*auth_end != '/')
        *w++ = '/';
    size_t rest = strcspn(auth_end, "#");
    memcpy(w, auth_end, rest);
    w += rest;
    *w = '\0';
    return 0;
}

/* ---- hosts ---- */

static struct host *find_host(pgw_h2client_t *c, const char *name, const char *port, int verify, int create)
{
    for (h2o_linklist_t *n = c->hosts.next; n != &c->hosts; n = n->next) {
        struct host *h = H2O_STRUCT_FROM_MEMBER(struct host, link, n);
        if (h->verify == verify && strcasecmp(h->name, name) == 0 && strcmp(h->port, port) == 0)
            return h;
    }
    if (!create)
        return NULL;
    struct host *h = h2o_mem_alloc(sizeof(*h));
    memset(h, 0, sizeof(*h));
    h->client = c;
    h->name = h2o_strdup(NULL, name, SIZE_MAX).base;
    h->port = h2o_strdup(NULL, port, SIZE_MAX).base;
    h->verify = verify;
    h2o_linklist_init_anchor(&h->queue);
    h2o_linklist_insert(&c->hosts, &h->link);
    return h;
}

static void on_room(pgw_h2conn_t *conn);
static void on_close(pgw_h2conn_t *conn, int no_h2);
static int on_refused(pgw_attempt_t *a);
static const pgw_h2conn_callbacks_t conn_callbacks = {on_room, on_close, on_refused};

/* Gives the attempt a stream, a new connection, or a place in the queue. */
static void place(struct xfer *x)
{
    struct host *h = x->host;
    for (size_t i = 0; i != h->num_conns; ++i) {
        if (pgw_h2conn_room(h->conns[i]) != 0) {
            pgw_h2conn_submit(h->conns[i], x->a, x->authority, x->path, &x->stream);
            return;
        }
    }
    size_t usable = 0;
    for (size_t i = 0; i != h->num_conns; ++i)
        usable += !pgw_h2conn_draining(h->conns[i]);
    if (usable < HOST_CONNECTIONS && h->num_conns < sizeof(h->conns) / sizeof(h->conns[0])) {
        pgw_h2conn_target_t target = {h->name, h->port, h->verify};
        pgw_h2conn_t *conn = pgw_h2conn_open(h->client->loop, h->client->ssl_ctx, &target, &conn_callbacks, h, &h->client->sockets);
        h->conns[h->num_conns++] = conn;
        pgw_h2conn_submit(conn, x->a, x->authority, x->path, &x->stream);
        x->a->cb->engaged(x->a); /* its own connection: connecting counts against `timeout` */
        return;
    }
    h2o_linklist_insert(&h->queue, &x->queue_link);
}

/* Moves waiting attempts onto connections while there is room. */
static void drain(struct host *h)
{
    while (!h2o_linklist_is_empty(&h->queue) && !h->no_h2) {
        struct xfer *x = H2O_STRUCT_FROM_MEMBER(struct xfer, queue_link, h->queue.next);
        h2o_linklist_unlink(&x->queue_link);
        place(x);
        if (h2o_linklist_is_linked(&x->queue_link)) /* queued again: no room anywhere */
            return;
    }
}

static void on_room(pgw_h2conn_t *conn)
{
    drain(pgw_h2conn_data(conn));
}

static void on_close(pgw_h2conn_t *conn, int no_h2)
{
    struct host *h = pgw_h2conn_data(conn);
    for (size_t i = 0; i != h->num_conns; ++i) {
        if (h->conns[i] == conn) {
            h->conns[i] = h->conns[--h->num_conns];
            break;
        }
    }
    if (no_h2) {
        h->no_h2 = 1;
        while (!h2o_linklist_is_empty(&h->queue)) {
            struct xfer *x = H2O_STRUCT_FROM_MEMBER(struct xfer, queue_link, h->queue.next);
            h2o_linklist_unlink(&x->queue_link);
            x->a->cb->done(x->a, PGW_ATTEMPT_ELSEWHERE, "the server did not select h2");
        }
        return;
    }
    drain(h);
}

/*
 * A stream the server refused, or dropped above a GOAWAY's last stream id, was never processed: it goes again at once,
 * on a connection with room (another, or a new one), a few times per attempt, as libcurl did with its own replays. Past
 * that the attempt ends as never processed, and the transfer replays it after a back-off (a server rotating its
 * connections this fast, or refusing what a first flight sends over its limit, is given a moment).
 */
static int on_refused(pgw_attempt_t *a)
{
    struct xfer *x = a->engine_data;
    if (x == NULL || x->refusals >= QUICK_REPLAYS)
        return 0;
    ++x->refusals;
    place(x);
    return 1;
}

/* ---- the engine ---- */

static void engine_start(pgw_attempt_t *a)
{
    pgw_h2client_t *c = (pgw_h2client_t *)a->engine;
    struct xfer *x = a->engine_data;
    if (x == NULL) {
        size_t size = PGW_H2CLIENT_SPLIT_SIZE(a->url);
        const char *host, *port;
        x = h2o_mem_alloc(offsetof(struct xfer, split) + size);
        memset(x, 0, offsetof(struct xfer, split));
        if (pgw_h2client_split_url(a->url, x->split, &host, &port, &x->authority, &x->path) != 0)
            h2o_fatal("h2client: an attempt it did not accept"); /* pgw_h2client_accepts checked the URL */
        x->a = a;
        x->host = find_host(c, host, port, a->ssl_verify != 0, 1);
        a->engine_data = x;
    }
    x->refusals = 0;
    place(x);
}

static void engine_stop(pgw_attempt_t *a, int premature)
{
    struct xfer *x = a->engine_data;
    (void)premature; /* a stream the server has not ended is reset either way */
    if (x == NULL)
        return;
    if (x->stream != NULL) {
        pgw_h2stream_t *st = x->stream;
        x->stream = NULL;
        pgw_h2stream_cancel(st);
    }
    if (h2o_linklist_is_linked(&x->queue_link))
        h2o_linklist_unlink(&x->queue_link);
}

static void engine_resume(pgw_attempt_t *a)
{
    struct xfer *x = a->engine_data;
    if (x != NULL && x->stream != NULL)
        pgw_h2stream_resume(x->stream);
}

static int engine_body_sent(pgw_attempt_t *a)
{
    struct xfer *x = a->engine_data;
    return x != NULL && x->stream != NULL && pgw_h2stream_body_sent(x->stream);
}

static void engine_release(pgw_attempt_t *a)
{
    struct xfer *x = a->engine_data;
    if (x == NULL)
        return;
    engine_stop(a, 1);
    free(x);
    a->engine_data = NULL;
}

pgw_h2client_t *pgw_h2client_create(uv_loop_t *loop, const char *ca_file)
{
    pgw_h2client_t *c = h2o_mem_alloc(sizeof(*c));
    memset(c, 0, sizeof(*c));
    c->engine = (pgw_attempt_engine_t){engine_start, engine_stop, engine_resume, engine_body_sent, engine_release};
    c->loop = loop;
    h2o_linklist_init_anchor(&c->hosts);
    static const char *const proxies[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i != sizeof(proxies) / sizeof(proxies[0]); ++i) {
        const char *v = getenv(proxies[i]);
        if (v != NULL && *v != '\0')
            c->proxied = 1;
    }
    c->ssl_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_verify_paths(c->ssl_ctx);
    if (ca_file != NULL && SSL_CTX_load_verify_locations(c->ssl_ctx, ca_file, NULL) != 1) {
        pgw_log_warn(MODULE_NAME, "cannot load the CA file %s: %s", ca_file, ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
    }
    return c;
}

const pgw_attempt_engine_t *pgw_h2client_engine(pgw_h2client_t *c)
{
    return &c->engine;
}

int pgw_h2client_accepts(pgw_h2client_t *c, const pgw_attempt_t *a)
{
    if (c->proxied || a->unix_socket != NULL || a->h2c || strncasecmp(a->url, "https://", 8) != 0)
        return 0;
    size_t size = PGW_H2CLIENT_SPLIT_SIZE(a->url);
    char stack[512], *buf = size <= sizeof(stack) ? stack : h2o_mem_alloc(size);
    const char *host, *port, *authority, *path;
    int ok = pgw_h2client_split_url(a->url, buf, &host, &port, &authority, &path) == 0;
    if (ok) {
        struct host *h = find_host(c, host, port, a->ssl_verify != 0, 0);
        ok = h == NULL || !h->no_h2;
    }
    if (buf != stack)
        free(buf);
    return ok;
}

unsigned long long pgw_h2client_sockets(pgw_h2client_t *c)
{
    return atomic_load_explicit(&c->sockets, memory_order_relaxed);
}
