/* poe-gateway: MIT licence. What the unit tests of the request path share (fixture.h).
 *
 * The worker is made the way the gateway makes one: pgw_config_load and pgw_server_init on a configuration file, then
 * what a worker thread's start does (h2o context, upstream client, shaper, connection table), on the test's thread and
 * loop, with no listener: requests come from the tests instead. A request is an h2o_req_t on a connection of its own
 * whose last output stream collects what h2o sends and holds the next send until proceed, the way a socket's write
 * completion does; h2o 2.2.5 exports no loopback connection, so this is the tests' own.
 *
 * The upstream is an HTTP/1.1 server on the same loop. It reads each request whole (head and Content-Length body),
 * keeps it for the test to look at, and answers with the next queued answer: its parts written one write each, then
 * the connection closed, so that an answer without a length ends there, and one with a longer Content-Length breaks
 * off. A part UPSTREAM_WAIT holds the rest until the test continues it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "common/log.h"
#include "test.h"
#include "fixture.h"
#include "handlers/handlers.h"

static pgw_server_t server;
static pgw_worker_t *worker;
static uv_timer_t tick;
static uint64_t turns_deadline;

/* ---- the scripted upstream ---- */

#define MAX_REQUEST (1024 * 1024)

struct upstream_conn {
    uv_tcp_t tcp;
    char *in;
    size_t inlen;
    const upstream_answer_t *answer; /* once the request is whole */
    size_t next_part;
    int waiting;  /* held at an UPSTREAM_WAIT */
    int shutdown; /* every part written: the write side is shut once they are flushed */
    int closing;
};

static struct {
    uv_tcp_t listener;
    unsigned short port;
    const upstream_answer_t *queue[16];
    size_t queued;
    struct upstream_conn *current; /* the connection whose answer is in progress */
    size_t requests;
    char *last; /* the last request, NUL-terminated */
    size_t hangups;
} up;

static void conn_close(struct upstream_conn *c);

static void on_conn_closed(uv_handle_t *handle)
{
    struct upstream_conn *c = handle->data;
    free(c->in);
    free(c);
}

static void conn_close(struct upstream_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (up.current == c)
        up.current = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *wr, int status)
{
    free(wr->data);
    free(wr);
}

static void on_shutdown(uv_shutdown_t *sr, int status)
{
    struct upstream_conn *c = sr->data;
    free(sr);
    /* the gateway reads the end of the answer and closes its side; its close is read as EOF, which closes ours */
    if (status != 0)
        conn_close(c);
}

static void write_parts(struct upstream_conn *c)
{
    const char *part;
    while ((part = c->answer->parts[c->next_part]) != NULL) {
        ++c->next_part;
        if (part == UPSTREAM_WAIT) {
            c->waiting = 1;
            return;
        }
        size_t len = strlen(part);
        uv_write_t *wr = malloc(sizeof(*wr));
        char *copy = malloc(len);
        memcpy(copy, part, len);
        wr->data = copy;
        uv_buf_t buf = uv_buf_init(copy, (unsigned)len);
        if (uv_write(wr, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
            free(copy);
            free(wr);
            return;
        }
    }
    if (c->answer->keep_open)
        return;
    c->shutdown = 1;
    uv_shutdown_t *sr = malloc(sizeof(*sr));
    sr->data = c;
    if (uv_shutdown(sr, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        free(sr);
        conn_close(c);
    }
}

/* The request's length once its head is complete; 0 while it is not. */
static size_t request_length(const char *in, size_t inlen)
{
    const char *end = memmem(in, inlen, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end - in) + 4, body = 0;
    for (const char *p = in; p < end; ++p) {
        if ((p == in || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0) {
            body = strtoul(p + 15, NULL, 10);
            break;
        }
    }
    return head + body;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct upstream_conn *c = handle->data;
    if (c->in == NULL)
        c->in = malloc(MAX_REQUEST + 1);
    *buf = uv_buf_init(c->in + c->inlen, (unsigned)(MAX_REQUEST - c->inlen));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct upstream_conn *c = stream->data;
    if (nread < 0) {
        /* the gateway closed the connection: while the answer was unfinished, that is a hang-up */
        if (c->answer != NULL && !c->shutdown)
            ++up.hangups;
        conn_close(c);
        return;
    }
    if (c->answer != NULL) /* the gateway sends nothing more on a connection it asked one request of */
        return;
    c->inlen += (size_t)nread;
    size_t len = request_length(c->in, c->inlen);
    if (len == 0 || c->inlen < len) {
        if (c->inlen == MAX_REQUEST)
            conn_close(c);
        return;
    }
    free(up.last);
    up.last = malloc(len + 1);
    memcpy(up.last, c->in, len);
    up.last[len] = '\0';
    ++up.requests;
    static const upstream_answer_t unscripted = {{"HTTP/1.1 599 Unscripted\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n"
                                                  "the test scripted no answer for this request"}};
    if (up.queued != 0) {
        c->answer = up.queue[0];
        memmove(up.queue, up.queue + 1, --up.queued * sizeof(up.queue[0]));
    } else {
        c->answer = &unscripted;
    }
    up.current = c;
    write_parts(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    if (status != 0)
        return;
    struct upstream_conn *c = calloc(1, sizeof(*c));
    uv_tcp_init(listener->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void upstream_start(uv_loop_t *loop)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int len = sizeof(sin);
    uv_tcp_init(loop, &up.listener);
    if (uv_tcp_bind(&up.listener, (struct sockaddr *)&sin, 0) != 0 ||
        uv_listen((uv_stream_t *)&up.listener, 64, on_connection) != 0 ||
        uv_tcp_getsockname(&up.listener, (struct sockaddr *)&sin, &len) != 0) {
        fprintf(stderr, "fixture: cannot start the scripted upstream\n");
        abort();
    }
    up.port = ntohs(sin.sin_port);
}

void upstream_expect(const upstream_answer_t *answer)
{
    if (up.queued == sizeof(up.queue) / sizeof(up.queue[0]))
        abort();
    up.queue[up.queued++] = answer;
}

void upstream_continue(void)
{
    struct upstream_conn *c = up.current;
    if (c != NULL && c->waiting && !c->closing) {
        c->waiting = 0;
        write_parts(c);
    }
}

size_t upstream_requests(void)
{
    return up.requests;
}

const char *upstream_last_request(void)
{
    return up.last != NULL ? up.last : "";
}

const char *upstream_last_header(const char *name)
{
    static char value[4096];
    const char *req = upstream_last_request(), *end = strstr(req, "\r\n\r\n");
    size_t nlen = strlen(name);
    if (end == NULL)
        return NULL;
    for (const char *p = strstr(req, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1, *eol = strstr(v, "\r\n");
            while (*v == ' ')
                ++v;
            snprintf(value, sizeof(value), "%.*s", (int)(eol - v), v);
            return value;
        }
    }
    return NULL;
}

const char *upstream_last_body(void)
{
    const char *req = upstream_last_request(), *end = strstr(req, "\r\n\r\n");
    return end != NULL ? end + 4 : "";
}

size_t upstream_hangups(void)
{
    return up.hangups;
}

/* ---- the worker ---- */

static void on_tick(uv_timer_t *timer)
{
}

pgw_worker_t *fixture_worker(void)
{
    static pgw_config_t conf;
    static pgw_worker_t workers[1];
    char path[64], yaml[4096], err[1024];

    if (worker != NULL)
        return worker;
    worker = workers;
    worker->server = &server;
    worker->id = 0;
    uv_loop_init(&worker->loop);
    upstream_start(&worker->loop);
    uv_timer_init(&worker->loop, &tick);
    uv_unref((uv_handle_t *)&tick);

    /* port 1 (tcpmux) has no listener on a test machine: connecting to it is refused */
    snprintf(
        yaml, sizeof(yaml),
        "model_list:\n"
        "  - model_name: claude-renamed\n"
        "    litellm_params: {model: anthropic/claude-upstream-name, api_base: 'http://127.0.0.1:%u', "
        "api_key: os.environ/" FIXTURE_UPSTREAM_KEY_ENV ", max_retries: 0}\n"
        "  - model_name: claude-dead\n"
        "    litellm_params: {model: anthropic/claude-dead, api_base: 'http://127.0.0.1:1', api_key: "
        "os.environ/" FIXTURE_UPSTREAM_KEY_ENV ", max_retries: 0}\n"
        "  - model_name: claude-*\n"
        "    litellm_params: {model: anthropic/*, api_base: 'http://127.0.0.1:%u', api_key: os.environ/" FIXTURE_UPSTREAM_KEY_ENV
        ", max_retries: 0}\n"
        "  - model_name: gpt-5\n"
        "    litellm_params: {model: openai/GPT-5, api_base: 'http://127.0.0.1:%u/v1', api_key: "
        "os.environ/" FIXTURE_UPSTREAM_KEY_ENV ", max_retries: 0}\n"
        "general_settings:\n"
        "  master_key: " FIXTURE_MASTER_KEY "\n"
        "gateway:\n"
        "  host: 127.0.0.1\n"
        "  port: 0\n"
        "  threads: 1\n"
        "  max_connections: 64\n"
        "  upstream_rpm: 0\n"
        "  keys:\n"
        "    - {name: alice, key: " FIXTURE_ALICE_KEY ", models: ['claude-*']}\n",
        up.port, up.port, up.port);
    make_temp_file(path, sizeof(path), yaml);
    setenv(FIXTURE_UPSTREAM_KEY_ENV, FIXTURE_UPSTREAM_KEY, 1);
    if (pgw_config_load(&conf, path, err, sizeof(err)) != 0 || pgw_server_init(&server, &conf) != 0) {
        fprintf(stderr, "fixture: %s\n", err);
        abort();
    }
    unlink(path);
    pgw_handlers_register(server.hostconf); /* as src/main.c does right after pgw_server_init */

    /* what pgw_server_run and a worker thread's start do for a worker, but its listener, thread and catalog fetch */
    server.workers = workers;
    server.num_workers = 1;
    worker->metrics = pgw_metrics_create();
    atomic_fetch_add(&server.current->refs, 1);
    worker->gen = server.current;
    h2o_context_init(&worker->ctx, &worker->loop, &server.globalconf);
    worker->accept_ctx.ctx = &worker->ctx;
    worker->accept_ctx.hosts = server.globalconf.hosts;
    uv_timer_init(&worker->loop, &worker->grace_timer);
    worker->grace_timer.data = worker;
    uv_timer_init(&worker->loop, &worker->trim_timer);
    worker->trim_timer.data = worker;
    uv_unref((uv_handle_t *)&worker->trim_timer);
    worker->upstream = pgw_upstream_create(&worker->loop, NULL, 0, 1);
    worker->upcheck = pgw_upcheck_create(worker->upstream, &conf);
    worker->shaper = pgw_shaper_create(&worker->loop, NULL);
    worker->conns = pgw_conns_create(&worker->loop, (uint64_t)(conf.idle_timeout * 1000), server.listeners);
    return worker;
}

const pgw_route_t *fixture_route(const char *model_name)
{
    const pgw_config_t *conf = fixture_worker()->gen->conf;
    for (size_t i = 0; i != conf->num_routes; ++i)
        if (strcmp(conf->routes[i].model_name, model_name) == 0)
            return conf->routes + i;
    fprintf(stderr, "fixture: no route %s\n", model_name);
    abort();
}

void fixture_turns_begin(void)
{
    uv_loop_t *loop = &fixture_worker()->loop;
    uv_update_time(loop);
    turns_deadline = uv_now(loop) + 10000;
}

int fixture_turn(void)
{
    uv_loop_t *loop = &fixture_worker()->loop;
    uv_timer_start(&tick, on_tick, 10, 0);
    uv_ref((uv_handle_t *)&tick);
    uv_run(loop, UV_RUN_ONCE);
    uv_timer_stop(&tick);
    uv_unref((uv_handle_t *)&tick);
    return uv_now(loop) < turns_deadline;
}

void fixture_settle(void)
{
    uv_loop_t *loop = &fixture_worker()->loop;
    for (int i = 0; i != 4; ++i)
        uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- requests ---- */

static socklen_t get_address(h2o_conn_t *conn, struct sockaddr *sa)
{
    return 0;
}

static h2o_socket_t *get_socket(h2o_conn_t *conn)
{
    test_req_t *t = H2O_STRUCT_FROM_MEMBER(test_req_t, conn, conn);
    return t->sock;
}

static const h2o_conn_callbacks_t test_conn_callbacks = {get_address, get_address, NULL, get_socket};

static void on_proceed_timer(uv_timer_t *timer)
{
    test_req_t *t = timer->data;
    if (t->in_flight && !t->ended)
        test_req_proceed(t);
}

static void on_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    test_req_t *t = H2O_STRUCT_FROM_MEMBER(test_req_t, ostr, self);
    if (t->ended || t->in_flight) {
        /* h2o's contract: one send at a time, nothing after the last; a breach is a test failure, not a crash */
        note("a send arrived %s", t->ended ? "after the last one" : "while another was in flight");
        ok(0);
    }
    ++t->sends;
    for (size_t i = 0; i != bufcnt; ++i) {
        h2o_buffer_reserve(&t->body, bufs[i].len);
        memcpy(t->body->bytes + t->body->size, bufs[i].base, bufs[i].len);
        t->body->size += bufs[i].len;
    }
    if (h2o_send_state_is_in_progress(state)) {
        t->in_flight = 1;
        if (t->auto_proceed)
            uv_timer_start(&t->proceed_timer, on_proceed_timer, 0, 0);
    } else {
        t->ended = 1;
        t->end = state;
    }
}

test_req_t *test_req_create(const char *method, const char *path, const char *body)
{
    pgw_worker_t *w = fixture_worker();
    test_req_t *t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, offsetof(test_req_t, req));
    t->conn.ctx = &w->ctx;
    t->conn.hosts = w->ctx.globalconf->hosts;
    t->conn.callbacks = &test_conn_callbacks;
    h2o_init_request(&t->req, &t->conn, NULL);
    memset(&t->ostr, 0, sizeof(*t) - offsetof(test_req_t, ostr));
    t->ostr.do_send = on_send;
    t->req._ostr_top = &t->ostr;
    h2o_buffer_init(&t->body, &h2o_socket_buffer_prototype);
    t->auto_proceed = 1;
    uv_timer_init(&w->loop, &t->proceed_timer);
    t->proceed_timer.data = t;

    t->req.version = 0x101;
    t->req.input.method = h2o_strdup(&t->req.pool, method, SIZE_MAX);
    t->req.input.path = h2o_strdup(&t->req.pool, path, SIZE_MAX);
    t->req.input.scheme = &H2O_URL_SCHEME_HTTP;
    t->req.input.authority = h2o_strdup(&t->req.pool, "127.0.0.1", SIZE_MAX);
    if (body != NULL)
        t->req.entity = h2o_strdup(&t->req.pool, body, SIZE_MAX);
    gettimeofday(&t->req.timestamps.request_begin_at, NULL);
    return t;
}

void test_req_header(test_req_t *t, const char *name, const char *value)
{
    h2o_iovec_t n = h2o_strdup(&t->req.pool, name, SIZE_MAX), v = h2o_strdup(&t->req.pool, value, SIZE_MAX);
    h2o_strtolower(n.base, n.len);
    h2o_add_header_by_str(&t->req.pool, &t->req.headers, n.base, n.len, 1, NULL, v.base, v.len);
}

void test_req_process(test_req_t *t)
{
    h2o_process_request(&t->req);
}

static void on_probe_dispose(void *p)
{
    /* the pool's shared entries are disposed newest first: the route's state is gone, the request's is not yet */
    struct {
        test_req_t *t;
        pgw_request_t *r;
    } *probe = p;
    probe->t->outcome = probe->r->outcome;
}

pgw_request_t *test_req_begin(test_req_t *t)
{
    h2o_req_t *req = &t->req;
    h2o_hostconf_t *hostconf = *t->conn.hosts;
    req->scheme = req->input.scheme;
    req->method = req->input.method;
    req->authority = req->input.authority;
    req->path = req->input.path;
    req->path_normalized = h2o_url_normalize_path(&req->pool, req->path.base, req->path.len, &req->query_at, &req->norm_indexes);
    h2o_req_bind_conf(req, hostconf, hostconf->paths.entries);
    pgw_request_t *r = pgw_request_begin(req);
    struct {
        test_req_t *t;
        pgw_request_t *r;
    } *probe = h2o_mem_alloc_shared(&req->pool, sizeof(*probe), on_probe_dispose);
    probe->t = t;
    probe->r = r;
    return r;
}

void test_req_proceed(test_req_t *t)
{
    if (!t->in_flight)
        return;
    t->in_flight = 0;
    h2o_proceed_response(&t->req);
}

const char *test_req_body(test_req_t *t)
{
    const char *p = t->body->bytes, *end = p + t->body->size, *te = test_req_res_header(t, "transfer-encoding");
    char *s = h2o_mem_alloc_pool(&t->req.pool, t->body->size + 1), *d = s;
    if (te == NULL || strcmp(te, "chunked") != 0) {
        if (t->body->size != 0) /* an empty buffer may have no bytes at all */
            memcpy(s, p, t->body->size);
        s[t->body->size] = '\0';
        return s;
    }
    /* h2o's chunked encoder framed an HTTP/1.1 response: its data, whole chunks only */
    while (p < end) {
        char *eol;
        size_t n = strtoul(p, &eol, 16);
        if (eol == p || end - eol < 2 || memcmp(eol, "\r\n", 2) != 0 || n == 0 || (size_t)(end - eol - 2) < n + 2)
            break;
        memcpy(d, eol + 2, n);
        d += n;
        p = eol + 2 + n + 2;
    }
    *d = '\0';
    return s;
}

const char *test_req_res_header(test_req_t *t, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&t->req.res.headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = t->req.res.headers.entries[i].value;
    return h2o_strdup(&t->req.pool, v.base, v.len).base;
}

static void on_proceed_timer_closed(uv_handle_t *handle)
{
    test_req_t *t = handle->data;
    h2o_buffer_dispose(&t->body);
    free(t);
}

pgw_outcome_t test_req_destroy(test_req_t *t)
{
    uv_timer_stop(&t->proceed_timer);
    h2o_dispose_request(&t->req);
    t->disposed = 1;
    pgw_outcome_t outcome = t->outcome;
    uv_close((uv_handle_t *)&t->proceed_timer, on_proceed_timer_closed);
    fixture_settle();
    return outcome;
}

/* ---- sockets ---- */

void tcp_pair(int fds[2])
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) != 0 || (fds[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        connect(fds[1], (struct sockaddr *)&sin, sizeof(sin)) != 0 || (fds[0] = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        perror("tcp_pair");
        abort();
    }
    close(lfd);
}
