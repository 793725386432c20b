/* poe-gateway: MIT licence. The client connections a worker accepted, and the sweep that cuts those where no request
 * has moved for longer than idle_timeout.
 *
 * Why: libh2o 2.2.5 times out an HTTP/1 request from its start (http1.req_timeout) and a TLS handshake from the accept
 * (handshake_timeout), but over HTTP/2 it re-arms the idle timeout on every read (lib/http2/connection.c, on_read) and has
 * no request-body timeout. A client trickling a request body, or a partial frame, a byte a second keeps an HTTP/2
 * connection, its buffers and a descriptor forever. The library is fixed (Debian's), so the gateway watches what it can
 * see from outside: the connections it accepts and the requests that reach its handlers (2.2.5 buffers a whole request
 * body before it calls a handler, so a request still arriving is never in one).
 *
 * Each entry counts the requests of its connection that are in the handlers and remembers when one last reached them or
 * ended (or the accept). A timer, every `period`, cuts the connections with no request in a handler and no such moment
 * for idle_timeout + period: shutdown(2) of the descriptor, after which h2o reads the end of the stream (or fails a
 * write) and closes the connection through its own path; the gateway never closes or frees h2o's objects. The extra
 * period lets h2o's own timeouts close what they cover first (an idle HTTP/2 connection with its GOAWAY, an HTTP/1
 * request, a TLS handshake), so the sweep acts only on connections h2o would keep open. A request in a handler (a stream
 * of many minutes, a request waiting in the shaper) protects its connection for as long as it lasts.
 *
 * Not done: a per-connection GOAWAY before the cut. h2o 2.2.5 has none in its API (enqueue_goaway and
 * initiate_graceful_shutdown are static; h2o_context_request_shutdown is for every connection at once), and a connection
 * the sweep cuts is one h2o kept open because the client kept sending, not a quiet one.
 *
 * Lifetime: the entry embeds the libuv handle h2o's socket wraps (h2o_uv_socket_create), so it lives until libuv's close
 * callback, which runs after h2o has freed its socket; the descriptor is closed by then, so that callback also gives the
 * connection's slot under gateway.max_connections back (src/serve/listener.c). A request holds its entry too (2.2.5 disposes
 * every request of a connection before it closes the socket, but the entry does not rely on that order): the entry is
 * freed when both are gone. Requests find their entry through the socket's on_close hook, which h2o uses only for its
 * client sockets (socketpool.c); h2o keeps the same h2o_socket_t through the TLS handshake, the "PRI *" switch to HTTP/2
 * and an h2c upgrade.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "serve/conns.h"
#include "common/log.h"

#define MODULE_NAME "conns"
#define MIN_PERIOD_MS 50
#define MAX_PERIOD_MS 1000

struct st_pgw_conns_t {
    uv_loop_t *loop;
    pgw_listeners_t *listeners; /* where each connection's slot is given back */
    uv_timer_t sweep;
    uint64_t idle_timeout_ms;
    uint64_t period_ms;
    h2o_linklist_t open; /* pgw_conn_t.link of every connection libuv has not closed yet */
};

struct st_pgw_conn_t {
    uv_tcp_t tcp; /* the connection's handle, wrapped by h2o's socket; the entry is its memory */
    pgw_conns_t *conns;
    h2o_linklist_t link;    /* in conns->open until libuv has closed the handle */
    h2o_socket_t *sock;     /* h2o's socket (owned by h2o); NULL once h2o has disposed of it */
    size_t requests;        /* requests of this connection in the gateway's handlers */
    uint64_t last_progress; /* uv_now() when a request last reached a handler or ended, or of the accept */
    unsigned closed : 1;    /* libuv has closed the handle */
    unsigned cut : 1;       /* the sweep has shut the descriptor down */
};

static void maybe_free(pgw_conn_t *c)
{
    if (c->closed && c->requests == 0)
        free(c);
}

/* libuv has closed the handle (after h2o freed its socket), and with it the descriptor */
static void on_handle_close(uv_handle_t *handle)
{
    pgw_conn_t *c = H2O_STRUCT_FROM_MEMBER(pgw_conn_t, tcp, (uv_tcp_t *)handle);
    pgw_listeners_release(c->conns->listeners);
    if (h2o_linklist_is_linked(&c->link))
        h2o_linklist_unlink(&c->link);
    c->sock = NULL;
    c->closed = 1;
    maybe_free(c);
}

/* h2o has disposed of the socket (the handle's close is under way) */
static void on_socket_close(void *data)
{
    pgw_conn_t *c = data;
    c->sock = NULL;
}

static void cut(pgw_conn_t *c, uint64_t now)
{
    uv_os_fd_t fd;
    if (uv_is_closing((uv_handle_t *)&c->tcp) || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return;
    c->cut = 1;
    if (shutdown(fd, SHUT_RDWR) != 0)
        return; /* the peer has gone already (ENOTCONN): h2o sees that on its own */
    pgw_log_debug(MODULE_NAME, "cut a client connection: no request for %.1f s", (now - c->last_progress) / 1000.0);
}

static void on_sweep(uv_timer_t *timer)
{
    pgw_conns_t *conns = timer->data;
    uint64_t now = uv_now(conns->loop);

    for (h2o_linklist_t *node = conns->open.next; node != &conns->open; node = node->next) {
        pgw_conn_t *c = H2O_STRUCT_FROM_MEMBER(pgw_conn_t, link, node);
        if (c->requests == 0 && !c->cut && c->sock != NULL && now - c->last_progress >= conns->idle_timeout_ms + conns->period_ms)
            cut(c, now);
    }
}

pgw_conns_t *pgw_conns_create(uv_loop_t *loop, uint64_t idle_timeout_ms, pgw_listeners_t *listeners)
{
    pgw_conns_t *conns = h2o_mem_alloc(sizeof(*conns));
    conns->loop = loop;
    conns->listeners = listeners;
    conns->idle_timeout_ms = idle_timeout_ms;
    /* a cut comes between idle_timeout + period and idle_timeout + 2 periods after the last progress */
    conns->period_ms = idle_timeout_ms / 4;
    if (conns->period_ms < MIN_PERIOD_MS)
        conns->period_ms = MIN_PERIOD_MS;
    if (conns->period_ms > MAX_PERIOD_MS)
        conns->period_ms = MAX_PERIOD_MS;
    h2o_linklist_init_anchor(&conns->open);
    uv_timer_init(loop, &conns->sweep);
    conns->sweep.data = conns;
    uv_timer_start(&conns->sweep, on_sweep, conns->period_ms, conns->period_ms);
    uv_unref((uv_handle_t *)&conns->sweep);
    return conns;
}

h2o_socket_t *pgw_conns_adopt(pgw_conns_t *conns, int fd)
{
    pgw_conn_t *c = h2o_mem_alloc(sizeof(*c));
    *c = (pgw_conn_t){.conns = conns};
    uv_tcp_init(conns->loop, &c->tcp);
    if (uv_tcp_open(&c->tcp, fd) != 0) {
        close(fd);
        uv_close((uv_handle_t *)&c->tcp, on_handle_close);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->last_progress = uv_now(conns->loop);
    h2o_linklist_insert(&conns->open, &c->link);
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_handle_close);
    c->sock->on_close.cb = on_socket_close;
    c->sock->on_close.data = c;
    return c->sock;
}

pgw_conn_t *pgw_conns_request_begin(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_socket_close)
        return NULL;
    pgw_conn_t *c = sock->on_close.data;
    ++c->requests;
    c->last_progress = uv_now(c->conns->loop);
    return c;
}

void pgw_conns_request_end(pgw_conn_t *c)
{
    --c->requests;
    c->last_progress = uv_now(c->conns->loop);
    maybe_free(c);
}
