/* poe-gateway: MIT licence. Unit tests for src/serve/conns.c: which connections the sweep cuts (idle past idle_timeout plus a
 * period, no request in a handler, not already cut or given up by h2o), that a request protects its connection, that an
 * entry outlives whichever of its socket and its request goes last, and that a closed connection gives its slot under
 * the cap back. Connections are loopback TCP pairs on the fixture's loop; the sweep's timer is called directly. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include "../../../../src/serve/conns.c"
#include "../../fixture.h"
#include "../../test.h"

static pgw_conns_t *conns_create(uint64_t idle_ms, pgw_listeners_t *listeners)
{
    pgw_conns_t *conns = pgw_conns_create(&fixture_worker()->loop, idle_ms, listeners);
    uv_timer_stop(&conns->sweep); /* the test sweeps when it means to */
    return conns;
}

static void on_sweep_closed(uv_handle_t *handle)
{
    free(((uv_timer_t *)handle)->data);
}

/* A table lives as long as its worker; a test's goes once its connections are closed. */
static void conns_free(pgw_conns_t *conns)
{
    uv_close((uv_handle_t *)&conns->sweep, on_sweep_closed);
    fixture_settle();
}

/* What the peer of a connection sees: 1 when the gateway's side was shut down (end of stream), 0 when nothing came. */
static int peer_sees_end(int peer)
{
    char c;
    ssize_t n = recv(peer, &c, 1, MSG_DONTWAIT);
    return n == 0 ? 1 : n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
}

static void test_period(void)
{
    pgw_listeners_t *listeners = pgw_listeners_create(8, 1);
    pgw_conns_t *conns = conns_create(1000, listeners);
    is_int(conns->period_ms, 250); /* a quarter of idle_timeout ... */
    conns_free(conns);
    conns = conns_create(60, listeners);
    is_int(conns->period_ms, MIN_PERIOD_MS); /* ... but never a busy loop */
    conns_free(conns);
    conns = conns_create(600000, listeners);
    is_int(conns->period_ms, MAX_PERIOD_MS); /* ... nor a cut long after the deadline */
    conns_free(conns);
    free(listeners);
}

static void test_sweep(void)
{
    pgw_listeners_t *listeners = pgw_listeners_create(8, 1);
    pgw_conns_t *conns = conns_create(60000, listeners); /* a minute: no stall of a loaded machine comes near it */
    uv_loop_t *loop = &fixture_worker()->loop;
    uint64_t limit = conns->idle_timeout_ms + conns->period_ms;
    int fds[2];

    tcp_pair(fds);
    h2o_socket_t *sock = pgw_conns_adopt(conns, fds[0]);
    ok(sock != NULL);
    pgw_conn_t *c = sock->on_close.data;
    uv_update_time(loop);

    /* just under the limit: left alone */
    c->last_progress = uv_now(loop) - limit + 1;
    on_sweep(&conns->sweep);
    ok(!c->cut);
    is_int(peer_sees_end(fds[1]), 0);

    /* a request in a handler protects the connection however long it lasts */
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    t->sock = sock;
    pgw_request_t *r = test_req_begin(t);
    ok(r->client_conn == c);
    is_int(c->requests, 1);
    c->last_progress = uv_now(loop) - 10 * limit;
    on_sweep(&conns->sweep);
    ok(!c->cut);
    /* its end counts as progress: the idle time starts again from there */
    test_req_destroy(t);
    is_int(c->requests, 0);
    uv_update_time(loop);
    ok(uv_now(loop) - c->last_progress < limit);
    on_sweep(&conns->sweep);
    ok(!c->cut);

    /* at the limit with nothing in a handler: cut, by shutting the descriptor down (h2o then closes it its own way) */
    c->last_progress = uv_now(loop) - limit;
    on_sweep(&conns->sweep);
    ok(c->cut);
    is_int(peer_sees_end(fds[1]), 1);
    ok(!uv_is_closing((uv_handle_t *)&c->tcp)); /* the gateway never closes h2o's objects */
    /* cut once */
    c->last_progress = uv_now(loop) - 10 * limit;
    on_sweep(&conns->sweep);
    ok(c->cut);

    h2o_socket_close(sock);
    fixture_settle();
    ok(h2o_linklist_is_empty(&conns->open)); /* forgotten once libuv closed it */
    close(fds[1]);
    conns_free(conns);
    free(listeners);
}

static void test_lifetime(void)
{
    pgw_listeners_t *listeners = pgw_listeners_create(8, 1);
    pgw_conns_t *conns = conns_create(1000, listeners);
    uv_loop_t *loop = &fixture_worker()->loop;
    int fds[2];

    /* h2o disposes of the socket while a request still holds the entry: the sweep leaves it alone, and the entry lasts
     * until the request ends (ASan would see a use after free) */
    tcp_pair(fds);
    h2o_socket_t *sock = pgw_conns_adopt(conns, fds[0]);
    pgw_conn_t *c = sock->on_close.data;
    test_req_t *t = test_req_create("POST", "/v1/messages", "{}");
    t->sock = sock;
    pgw_request_t *r = test_req_begin(t);
    ok(r->client_conn == c);
    t->sock = NULL;
    h2o_socket_close(sock);
    ok(c->sock == NULL);
    c->last_progress = uv_now(loop) - 10 * (conns->idle_timeout_ms + conns->period_ms);
    on_sweep(&conns->sweep);
    ok(!c->cut);
    fixture_settle();
    ok(c->closed);
    ok(h2o_linklist_is_empty(&conns->open));
    test_req_destroy(t); /* the entry goes with the request */
    close(fds[1]);

    /* a request whose socket is not one of the table's, or that has none, has no entry, and needs no end */
    t = test_req_create("POST", "/v1/messages", "{}");
    r = test_req_begin(t);
    ok(r->client_conn == NULL);
    tcp_pair(fds);
    uv_tcp_t *foreign = malloc(sizeof(*foreign));
    uv_tcp_init(loop, foreign);
    uv_tcp_open(foreign, fds[0]);
    t->sock = h2o_uv_socket_create((uv_stream_t *)foreign, (uv_close_cb)free);
    ok(pgw_conns_request_begin(&t->req) == NULL);
    h2o_socket_close(t->sock);
    t->sock = NULL;
    close(fds[1]);
    test_req_destroy(t);

    conns_free(conns);
    free(listeners);
}

/* ---- the slot under the cap ---- */

static struct {
    pgw_conns_t *conns;
    h2o_socket_t *socks[4];
    int n;
} accepted;

static void on_accept(pgw_listener_t *listener, int fd, void *data)
{
    accepted.socks[accepted.n++] = pgw_conns_adopt(accepted.conns, fd);
}

static int connect_to(int port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        abort();
    return fd;
}

static void test_slot(void)
{
    /* a cap of one connection: the second waits in the listen queue until the first's descriptor is closed */
    pgw_listeners_t *listeners = pgw_listeners_create(1, 1);
    accepted.conns = conns_create(1000, listeners);
    accepted.n = 0;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    ok(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && listen(lfd, 16) == 0);
    getsockname(lfd, (struct sockaddr *)&sin, &len);
    pgw_listener_t *l = pgw_listener_start(listeners, &fixture_worker()->loop, lfd, on_accept, NULL);

    int c1 = connect_to(ntohs(sin.sin_port)), c2 = connect_to(ntohs(sin.sin_port));
    RUN_UNTIL(accepted.n == 1);
    is_int(accepted.n, 1);
    fixture_settle();
    is_int(accepted.n, 1); /* at the cap */

    /* the sweep cuts the first; h2o closes it; its slot comes back, and the second is taken */
    pgw_conn_t *first = accepted.socks[0]->on_close.data;
    first->last_progress = uv_now(&fixture_worker()->loop) - 10 * (accepted.conns->idle_timeout_ms + accepted.conns->period_ms);
    on_sweep(&accepted.conns->sweep);
    ok(first->cut);
    h2o_socket_close(accepted.socks[0]);
    RUN_UNTIL(accepted.n == 2);
    is_int(accepted.n, 2);

    for (int i = 1; i < accepted.n; ++i)
        h2o_socket_close(accepted.socks[i]);
    pgw_listener_close(l);
    close(c1);
    close(c2);
    fixture_settle();
    conns_free(accepted.conns);
    free(listeners);
}

void test_src__conns_c(void)
{
    subtest("the sweep's period", test_period);
    subtest("what the sweep cuts", test_sweep);
    subtest("an entry's lifetime", test_lifetime);
    subtest("the slot under the cap", test_slot);
}
