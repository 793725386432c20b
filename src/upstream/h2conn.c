/* poe-gateway: MIT licence. One HTTP/2 connection over TLS to an upstream host, on a worker's libuv loop.
 *
 * How it works. A connection resolves its host (uv_getaddrinfo, off the loop), connects a non-blocking socket to each
 * address in turn, and watches it with a uv_poll; OpenSSL runs over a BIO of ours that reads from and writes to the
 * connection's own buffers (tls_bio_*), and nghttp2 runs on memory (nghttp2_session_mem_recv / _mem_send), so that this
 * file alone decides when the kernel is asked for anything:
 *
 * - Reading: one read() of up to READ_SIZE bytes per wake-up (level-triggered: a fuller socket wakes us again), then
 *   SSL_read until it wants more, each piece of plain text fed to nghttp2 at once. Body bytes reach the transfer from
 *   OpenSSL's output without another copy (on_data_chunk), unless the transfer is paused.
 * - Writing: everything nghttp2 has to send is encrypted into one output buffer, and written with one write() at the
 *   end of whatever caused it (a read, a new request, a cancel: flush). Small frames are gathered into one TLS record;
 *   a DATA frame carries at most PGW_H2CONN_DATA_PAYLOAD_MAX bytes, so that it fills one 16 KB record instead of
 *   spilling 9 bytes into a second one. The request body is copied once, from the caller's buffers into nghttp2's frame
 *   (read_body), and then encrypted.
 * - Flow control: the windows are opened wide, and each stream's received bytes are given back (nghttp2_session_consume)
 *   only once the transfer has taken them. A paused transfer's bytes are held by its stream and the server soon stops
 *   sending on that stream alone; the other streams of the connection go on.
 *
 * A stream's end decides the attempt's result (on_stream_close): END_STREAM from the server, or RST_STREAM(NO_ERROR)
 * after a whole answer by its Content-Length, is a complete answer; a stream refused (REFUSED_STREAM, or above a
 * GOAWAY's last stream id, which nghttp2 closes as refused) before any answer was never processed; anything else, the
 * connection cut at any point included, is a failure. A stream without END_STREAM is never complete.
 *
 * Nothing here frees memory nghttp2 or OpenSSL may still use from inside their calls: a connection that fails is marked
 * closed, its streams are ended, and the structure goes once its handles are closed (conn_release).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <h2o.h>
#include "common/log.h"
#include "upstream/h2conn.h"

#define MODULE_NAME "upstream"
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_TIMEOUT_MS 60000           /* an idle connection is closed after this */
#define READ_SIZE 65536                 /* bytes asked of the socket per read */
#define STREAM_WINDOW (1 << 20)         /* what a server may send on a stream ahead of the transfer */
#define CONNECTION_WINDOW (64 << 20)    /* and on the whole connection */
#define STREAMS_BEFORE_SETTINGS 100     /* HTTP/2's recommended minimum, assumed until the server's SETTINGS */
#define MAX_STREAMS_PER_CONNECTION 1024 /* this client's own cap, whatever a server allows */
#define SMALL_FRAME 1024                /* frames below this size are gathered into one TLS record */
#define TLS_RECORD_MAX 16384
#define OUT_HIGH_WATER (256 * 1024) /* cipher text made ahead of the socket: past it, flush waits until it is writable */

enum conn_state { CS_RESOLVING, CS_CONNECTING, CS_HANDSHAKE, CS_READY, CS_CLOSED };

struct sock {
    uv_poll_t poll;
    pgw_h2conn_t *conn;
};

struct st_pgw_h2stream_t {
    pgw_h2conn_t *conn;
    pgw_attempt_t *a;
    pgw_h2stream_t **ref; /* the owner's pointer to this stream, cleared when it ends */
    h2o_linklist_t link;  /* in conn->pending until submitted, then in conn->streams */
    const char *authority, *path; /* the owner's (see pgw_h2conn_submit) */
    int32_t id;             /* 0 until submitted */
    size_t body_off;        /* how much of the body is in DATA frames */
    int64_t content_length; /* of the final head, or -1 */
    int64_t received;       /* body bytes taken by the transfer */
    int status;             /* of the header block being received */
    int head_final;         /* a final head was delivered */
    int end_stream;         /* the server ended its side */
    int paused;             /* the transfer paused: `held` has its bytes */
    h2o_buffer_t *held;     /* body bytes received while paused, or NULL */
    int closed;             /* the session closed the stream while bytes were held: `result` waits for them */
    pgw_attempt_result_t result;
    char errstr[320];
};

struct st_pgw_h2conn_t {
    uv_loop_t *loop;
    const pgw_h2conn_callbacks_t *cb;
    void *data;
    atomic_ullong *sockets;
    int counted; /* counted in *sockets: it carries a stream */
    char *host, *port;
    int verify;
    enum conn_state state;
    uv_getaddrinfo_t gai;
    struct addrinfo *addrs, *next_addr;
    int fd;
    struct sock *sock;
    int poll_events;
    uv_timer_t timer; /* the connect deadline, then the idle timer */
    int handles;      /* open uv handles (the timer, the getaddrinfo request): freed at 0 (conn_release) */
    SSL *ssl;
    nghttp2_session *session;
    h2o_buffer_t *in;       /* cipher text read, not yet taken by OpenSSL */
    h2o_buffer_t *out;      /* cipher text to write */
    h2o_linklist_t pending; /* streams waiting for the connection to be ready */
    h2o_linklist_t streams; /* streams submitted to nghttp2 and not ended */
    size_t num_streams;     /* on both lists */
    int goaway;             /* the server sent GOAWAY: no new stream */
    int in_io;              /* > 0 while nghttp2 or our reading runs: flush waits for the end */
    char error[256];
};

static void flush(pgw_h2conn_t *conn);
static void conn_fail(pgw_h2conn_t *conn, pgw_attempt_result_t result, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void buf_append(h2o_buffer_t **buf, const void *bytes, size_t len)
{
    h2o_iovec_t room = h2o_buffer_reserve(buf, len);
    memcpy(room.base, bytes, len);
    (*buf)->size += len;
}

/* ---- the TLS BIO: OpenSSL reads conn->in and writes conn->out ---- */

static BIO_METHOD *bio_method;

static int tls_bio_write(BIO *b, const char *buf, int len)
{
    pgw_h2conn_t *conn = BIO_get_data(b);
    buf_append(&conn->out, buf, len);
    return len;
}

static int tls_bio_read(BIO *b, char *buf, int len)
{
    pgw_h2conn_t *conn = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (conn->in->size == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = conn->in->size < (size_t)len ? conn->in->size : (size_t)len;
    memcpy(buf, conn->in->bytes, n);
    h2o_buffer_consume(&conn->in, n);
    return (int)n;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO *tls_bio_new(pgw_h2conn_t *conn)
{
    if (bio_method == NULL) { /* racing workers may each make one; the loser's is kept for the process's life */
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgw-h2conn");
        BIO_meth_set_write(m, tls_bio_write);
        BIO_meth_set_read(m, tls_bio_read);
        BIO_meth_set_ctrl(m, tls_bio_ctrl);
        BIO_meth_set_create(m, tls_bio_create);
        if (!__atomic_compare_exchange_n(&bio_method, &(BIO_METHOD *){NULL}, m, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            BIO_meth_free(m);
    }
    BIO *b = BIO_new(__atomic_load_n(&bio_method, __ATOMIC_ACQUIRE));
    BIO_set_data(b, conn);
    return b;
}

/* ---- socket ---- */

static void on_sock_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void close_sock(pgw_h2conn_t *conn)
{
    if (conn->sock == NULL)
        return;
    conn->sock->poll.data = conn->sock;
    uv_close((uv_handle_t *)&conn->sock->poll, on_sock_close); /* before the descriptor goes: libuv takes it out of epoll */
    conn->sock = NULL;
    close(conn->fd);
    conn->fd = -1;
}

static void on_poll(uv_poll_t *handle, int status, int events);

static void watch(pgw_h2conn_t *conn, int events)
{
    if (conn->sock != NULL && events != conn->poll_events) {
        uv_poll_start(&conn->sock->poll, events, on_poll);
        conn->poll_events = events;
    }
}

/* Writes conn->out; what the socket does not take waits for it to be writable. */
static void write_out(pgw_h2conn_t *conn)
{
    while (conn->out->size != 0 && conn->fd >= 0) {
        ssize_t n = write(conn->fd, conn->out->bytes, conn->out->size);
        if (n > 0) {
            h2o_buffer_consume(&conn->out, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            watch(conn, UV_READABLE | UV_WRITABLE);
            return;
        }
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "Send failure: %s", strerror(errno));
        return;
    }
    if (conn->out->capacity > OUT_HIGH_WATER) { /* a burst's buffer is not kept for the connection's life */
        h2o_buffer_dispose(&conn->out);
        h2o_buffer_init(&conn->out, &h2o_socket_buffer_prototype);
    }
    if (conn->state >= CS_HANDSHAKE && conn->state != CS_CLOSED)
        watch(conn, UV_READABLE);
}

/* ---- streams ---- */

static void count_socket(pgw_h2conn_t *conn)
{
    int carrying = conn->num_streams != 0 && conn->state != CS_CLOSED;
    if (carrying == conn->counted)
        return;
    conn->counted = carrying;
    if (carrying)
        atomic_fetch_add_explicit(conn->sockets, 1, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(conn->sockets, 1, memory_order_relaxed);
}

static void idle_check(pgw_h2conn_t *conn);
static void conn_release(pgw_h2conn_t *conn);

/* Takes the stream off its connection and frees it; the owner's pointer is cleared. */
static void stream_free(pgw_h2stream_t *st)
{
    pgw_h2conn_t *conn = st->conn;
    if (h2o_linklist_is_linked(&st->link)) {
        h2o_linklist_unlink(&st->link);
        --conn->num_streams;
    }
    if (st->id != 0 && !st->closed && conn->state != CS_CLOSED)
        nghttp2_session_set_stream_user_data(conn->session, st->id, NULL);
    if (st->ref != NULL)
        *st->ref = NULL;
    if (st->held != NULL)
        h2o_buffer_dispose(&st->held);
    free(st);
    count_socket(conn);
    if (conn->state == CS_CLOSED) {
        conn_release(conn);
        return;
    }
    idle_check(conn);
    /* a stream's place is free: the owner's queue may take it (without this, attempts queued past the connections'
     * streams waited for the next SETTINGS, GOAWAY or new connection, and under steady load for ever: t/83rotation) */
    if (conn->state == CS_READY && !conn->goaway && conn->cb->on_room != NULL)
        conn->cb->on_room(conn);
}

/* The attempt ends with `result`: the stream goes, then the transfer hears of it. */
static void stream_end(pgw_h2stream_t *st, pgw_attempt_result_t result, const char *errstr)
{
    pgw_attempt_t *a = st->a;
    const pgw_h2conn_callbacks_t *cb = st->conn->cb; /* the connection may go with the stream */
    char msg[sizeof(st->errstr)];
    snprintf(msg, sizeof(msg), "%s", errstr != NULL ? errstr : ""); /* it may be st->errstr */
    stream_free(st);
    if (result == PGW_ATTEMPT_NEVER_PROCESSED && cb->on_refused != NULL && cb->on_refused(a))
        return;
    a->cb->done(a, result, errstr != NULL ? msg : NULL);
}

/* Hands `len` bytes to the transfer. Returns 0 when taken, 1 when it paused (the bytes are then its to hold), -1 when
 * the transfer was cancelled (the stream is gone). */
static int deliver(pgw_h2stream_t *st, const char *bytes, size_t len)
{
    pgw_attempt_t *a = st->a;
    int r = a->cb->body(a, bytes, len);
    if (r == 0)
        st->received += (int64_t)len;
    return r;
}

static void give_back(pgw_h2stream_t *st, size_t len)
{
    pgw_h2conn_t *conn = st->conn;
    if (conn->state != CS_READY || len == 0)
        return;
    if (st->id != 0 && !st->closed)
        nghttp2_session_consume(conn->session, st->id, len);
    else
        nghttp2_session_consume_connection(conn->session, len);
}

/* ---- nghttp2 callbacks ---- */

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length, uint32_t *data_flags,
                         nghttp2_data_source *source, void *user_data)
{
    pgw_h2stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    (void)source, (void)user_data;
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    pgw_attempt_t *a = st->a;
    size_t n = 0, skip = st->body_off;
    for (size_t i = 0; i != sizeof(a->body) / sizeof(a->body[0]) && n != length; ++i) {
        if (skip >= a->body[i].len) {
            skip -= a->body[i].len;
            continue;
        }
        size_t take = a->body[i].len - skip < length - n ? a->body[i].len - skip : length - n;
        memcpy(buf + n, a->body[i].base + skip, take);
        n += take;
        skip = 0;
    }
    st->body_off += n;
    if (st->body_off >= a->body_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static ssize_t data_length(nghttp2_session *session, uint8_t frame_type, int32_t stream_id, int32_t session_window,
                           int32_t stream_window, uint32_t max_frame, void *user_data)
{
    (void)session, (void)frame_type, (void)stream_id, (void)session_window, (void)stream_window, (void)max_frame, (void)user_data;
    return PGW_H2CONN_DATA_PAYLOAD_MAX; /* nghttp2 lowers it to the windows and the frame size */
}

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    pgw_h2stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    (void)user_data;
    if (st != NULL && frame->hd.type == NGHTTP2_HEADERS && !st->head_final) {
        st->status = 0;
        st->content_length = -1;
    }
    return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
{
    pgw_h2stream_t *st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    (void)flags, (void)user_data;
    if (st == NULL || frame->hd.type != NGHTTP2_HEADERS || st->head_final) /* trailers are not kept */
        return 0;
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        st->status = 0;
        for (size_t i = 0; i != valuelen && value[i] >= '0' && value[i] <= '9'; ++i)
            st->status = st->status * 10 + (value[i] - '0');
        return 0;
    }
    if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
        st->content_length = strtoll((const char *)value, NULL, 10); /* nghttp2 has checked it is a number */
    st->a->cb->header(st->a, (const char *)name, namelen, (const char *)value, valuelen);
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    pgw_h2conn_t *conn = user_data;
    pgw_h2stream_t *st;

    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if ((st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id)) == NULL)
            return 0;
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0)
            st->end_stream = 1;
        if (!st->head_final) {
            int status = st->status;
            if (status >= 200)
                st->head_final = 1;
            if (st->a->cb->head(st->a, status, status >= 200 ? st->content_length : -1) != 0)
                return 0; /* cancelled: the stream is gone */
        }
        break;
    case NGHTTP2_DATA:
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0 &&
            (st = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id)) != NULL)
            st->end_stream = 1;
        break;
    case NGHTTP2_GOAWAY: /* the streams above its last id are closed as refused; the owner opens another connection */
        conn->goaway = 1;
        if (conn->cb->on_room != NULL)
            conn->cb->on_room(conn);
        break;
    case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0 && conn->cb->on_room != NULL)
            conn->cb->on_room(conn);
        break;
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data, size_t len,
                         void *user_data)
{
    pgw_h2stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    (void)flags, (void)user_data;
    if (st == NULL) {
        nghttp2_session_consume(session, stream_id, len);
        return 0;
    }
    if (st->paused) {
        buf_append(&st->held, data, len);
        return 0;
    }
    switch (deliver(st, (const char *)data, len)) {
    case 0:
        nghttp2_session_consume(session, stream_id, len);
        break;
    case 1:
        st->paused = 1;
        if (st->held == NULL)
            h2o_buffer_init(&st->held, &h2o_socket_buffer_prototype);
        buf_append(&st->held, data, len);
        break;
    default:
        nghttp2_session_consume(session, stream_id, len);
        break;
    }
    return 0;
}

/* What a stream's end means for its attempt (see the opening comment). */
static pgw_attempt_result_t stream_result(pgw_h2stream_t *st, uint32_t error_code, char *msg, size_t size)
{
    int64_t have = st->received + (st->held != NULL ? (int64_t)st->held->size : 0);
    if (st->end_stream)
        return PGW_ATTEMPT_OK;
    if (error_code == NGHTTP2_NO_ERROR && st->head_final && st->content_length >= 0 && have >= st->content_length)
        return PGW_ATTEMPT_OK;
    if (error_code == NGHTTP2_REFUSED_STREAM && !st->head_final) {
        snprintf(msg, size, "HTTP/2 stream %d was refused by the server (REFUSED_STREAM)", st->id);
        return PGW_ATTEMPT_NEVER_PROCESSED;
    }
    if (error_code == NGHTTP2_NO_ERROR)
        snprintf(msg, size, "HTTP/2 stream %d ended before the answer was complete (RST_STREAM(NO_ERROR))", st->id);
    else
        snprintf(msg, size, "HTTP/2 stream %d was not closed cleanly: %s (err %u)", st->id, nghttp2_http2_strerror(error_code),
                 error_code);
    return PGW_ATTEMPT_RETRYABLE;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
{
    pgw_h2stream_t *st = nghttp2_session_get_stream_user_data(session, stream_id);
    (void)user_data;
    if (st == NULL)
        return 0;
    st->result = stream_result(st, error_code, st->errstr, sizeof(st->errstr));
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (st->paused) { /* the transfer has bytes to take first: it ends at resume */
        st->closed = 1;
        return 0;
    }
    stream_end(st, st->result, st->result == PGW_ATTEMPT_OK ? NULL : st->errstr);
    return 0;
}

/* ---- the session ---- */

/* Submits a stream waiting on conn->pending to nghttp2; it moves to conn->streams. */
static void submit(pgw_h2stream_t *st)
{
    pgw_h2conn_t *conn = st->conn;
    pgw_attempt_t *a = st->a;
    size_t lines = 0, bytes = 0;
    for (const struct curl_slist *l = a->headers; l != NULL; l = l->next, ++lines)
        bytes += strlen(l->data) + 1;
    nghttp2_nv nv_stack[32], *nv = lines + 6 <= 32 ? nv_stack : h2o_mem_alloc(sizeof(*nv) * (lines + 6));
    char scratch_stack[4096], *scratch = bytes + 32 <= sizeof(scratch_stack) ? scratch_stack : h2o_mem_alloc(bytes + 32), clen[32];
    size_t n = 0;
    int has = 0;
#define NV(n_, v_, vl_) ((nghttp2_nv){(uint8_t *)(n_), (uint8_t *)(v_), strlen(n_), (vl_), NGHTTP2_NV_FLAG_NONE})
    nv[n++] = NV(":method", a->method, strlen(a->method));
    nv[n++] = NV(":scheme", "https", 5);
    nv[n++] = NV(":authority", st->authority, strlen(st->authority));
    nv[n++] = NV(":path", st->path, strlen(st->path));
    n += pgw_h2conn_convert_headers(a->headers, nv + n, lines, scratch, &has);
    if ((has & 1) == 0 && strcmp(a->method, "GET") != 0) {
        int l = snprintf(clen, sizeof(clen), "%zu", a->body_len);
        nv[n++] = NV("content-length", clen, (size_t)l);
    }
    if ((has & 2) == 0)
        nv[n++] = NV("accept", "*/*", 3); /* as libcurl sends */
#undef NV
    nghttp2_data_provider body = {{.ptr = NULL}, read_body};
    int32_t id = nghttp2_submit_request(conn->session, NULL, nv, n, a->body_len != 0 ? &body : NULL, st);
    if (nv != nv_stack)
        free(nv);
    if (scratch != scratch_stack)
        free(scratch);
    if (id < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "HTTP/2 request not sent: %s", nghttp2_strerror(id));
        stream_end(st, PGW_ATTEMPT_RETRYABLE, msg);
        return;
    }
    st->id = id;
    h2o_linklist_unlink(&st->link); /* from conn->pending */
    h2o_linklist_insert(&conn->streams, &st->link);
    a->cb->engaged(a);
}

size_t pgw_h2conn_convert_headers(const struct curl_slist *lines, nghttp2_nv *nv, size_t cap, char *scratch, int *has)
{
    static const char *const forbidden[] = {"host",    "connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                            "upgrade", "te",         "expect"};
    size_t n = 0;
    for (const struct curl_slist *l = lines; l != NULL && n != cap; l = l->next) {
        const char *line = l->data, *colon = strchr(line, ':');
        if (colon == NULL || colon == line)
            continue;
        size_t nlen = colon - line;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            ++v;
        size_t vlen = strlen(v);
        while (vlen != 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            --vlen;
        if (vlen == 0) /* "Name:" removes the header for libcurl */
            continue;
        char *name = scratch;
        for (size_t i = 0; i != nlen; ++i)
            name[i] = (char)h2o_tolower(line[i]);
        name[nlen] = '\0';
        scratch += nlen + 1;
        int skip = 0;
        for (size_t i = 0; i != sizeof(forbidden) / sizeof(forbidden[0]) && !skip; ++i)
            skip = strcmp(name, forbidden[i]) == 0;
        if (skip)
            continue;
        if (strcmp(name, "content-length") == 0)
            *has |= 1;
        else if (strcmp(name, "accept") == 0)
            *has |= 2;
        nv[n++] = (nghttp2_nv){(uint8_t *)name, (uint8_t *)v, nlen, vlen, NGHTTP2_NV_FLAG_NONE};
    }
    return n;
}

static int session_start(pgw_h2conn_t *conn)
{
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_data_source_read_length_callback(cbs, data_length);
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, STREAMS_BEFORE_SETTINGS);
    int rv = nghttp2_session_client_new2(&conn->session, cbs, conn, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    if (rv != 0)
        return -1;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}, {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW}};
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(conn->session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW);
    return 0;
}

/*
 * Encrypts what nghttp2 has to send into conn->out and writes it; waits while nghttp2 or our reading runs. Past
 * OUT_HIGH_WATER bytes that the socket does not take, the rest stays with nghttp2 until the socket is writable
 * (on_poll), so that many uploads at once are not all encrypted ahead of a slow upstream.
 */
static void flush(pgw_h2conn_t *conn)
{
    if (conn->in_io != 0 || conn->state != CS_READY)
        return;
    char small[TLS_RECORD_MAX];
    int more;
    do {
        size_t small_len = 0;
        more = 0;
        ++conn->in_io;
        for (;;) {
            if (conn->out->size >= OUT_HIGH_WATER) {
                write_out(conn);
                if (conn->state != CS_READY) {
                    --conn->in_io;
                    return;
                }
                if (conn->out->size >= OUT_HIGH_WATER) {
                    more = 1;
                    break;
                }
            }
            const uint8_t *p;
            ssize_t n = nghttp2_session_mem_send(conn->session, &p);
            if (n < 0) {
                --conn->in_io;
                conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "HTTP/2 error: %s", nghttp2_strerror((int)n));
                return;
            }
            if (n == 0)
                break;
            if ((size_t)n < SMALL_FRAME && small_len + (size_t)n <= sizeof(small)) {
                memcpy(small + small_len, p, (size_t)n);
                small_len += (size_t)n;
                continue;
            }
            if (small_len != 0) {
                SSL_write(conn->ssl, small, (int)small_len);
                small_len = 0;
            }
            SSL_write(conn->ssl, p, (int)n);
        }
        if (small_len != 0)
            SSL_write(conn->ssl, small, (int)small_len);
        --conn->in_io;
        write_out(conn);
    } while (more && conn->state == CS_READY && conn->out->size == 0); /* else the socket's writability goes on (on_poll) */
    if (conn->state == CS_READY && !nghttp2_session_want_read(conn->session) && !nghttp2_session_want_write(conn->session))
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "HTTP/2 connection ended by the server");
}

/* Plain text from OpenSSL into nghttp2, until OpenSSL wants more cipher text. */
static void read_plain(pgw_h2conn_t *conn)
{
    char buf[TLS_RECORD_MAX];
    ++conn->in_io;
    while (conn->state == CS_READY) {
        int r = SSL_read(conn->ssl, buf, sizeof(buf));
        if (r > 0) {
            ssize_t rv = nghttp2_session_mem_recv(conn->session, (const uint8_t *)buf, (size_t)r);
            if (rv < 0) {
                --conn->in_io;
                conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "HTTP/2 framing error: %s", nghttp2_strerror((int)rv));
                return;
            }
            continue;
        }
        int err = SSL_get_error(conn->ssl, r);
        if (err == SSL_ERROR_WANT_READ)
            break;
        --conn->in_io;
        if (err == SSL_ERROR_ZERO_RETURN)
            conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "connection closed by the server");
        else
            conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "TLS read error: %s", ERR_reason_error_string(ERR_get_error()));
        ERR_clear_error();
        return;
    }
    --conn->in_io;
}

/* The connection is ready: the pending streams are sent. */
static void become_ready(pgw_h2conn_t *conn)
{
    conn->state = CS_READY;
    uv_timer_stop(&conn->timer);
    while (!h2o_linklist_is_empty(&conn->pending) && conn->state == CS_READY) {
        submit(H2O_STRUCT_FROM_MEMBER(pgw_h2stream_t, link, conn->pending.next));
    }
    flush(conn);
    if (conn->state == CS_READY && conn->cb->on_room != NULL)
        conn->cb->on_room(conn);
}

static void handshake(pgw_h2conn_t *conn)
{
    int r = SSL_do_handshake(conn->ssl);
    if (r != 1) {
        int err = SSL_get_error(conn->ssl, r);
        write_out(conn);
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            return;
        long verify = SSL_get_verify_result(conn->ssl);
        if (verify != X509_V_OK)
            conn_fail(conn, PGW_ATTEMPT_FAILED, "SSL certificate problem: %s", X509_verify_cert_error_string(verify));
        else
            conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "SSL connect error with %s: %s", conn->host,
                      ERR_peek_error() != 0 ? ERR_reason_error_string(ERR_peek_error()) : "connection closed");
        ERR_clear_error();
        return;
    }
    const unsigned char *proto;
    unsigned proto_len;
    SSL_get0_alpn_selected(conn->ssl, &proto, &proto_len);
    if (!(proto_len == 2 && memcmp(proto, "h2", 2) == 0)) {
        pgw_log_info(MODULE_NAME, "%s:%s does not speak HTTP/2 (ALPN): its requests go through libcurl", conn->host, conn->port);
        conn_fail(conn, PGW_ATTEMPT_ELSEWHERE, "the server did not select h2");
        return;
    }
    if (session_start(conn) != 0) {
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "HTTP/2 session not created");
        return;
    }
    become_ready(conn);
    if (conn->state == CS_READY) { /* the server's SETTINGS may have come with the handshake's end */
        read_plain(conn);
        flush(conn);
    }
}

static void start_tls(pgw_h2conn_t *conn)
{
    conn->state = CS_HANDSHAKE;
    int one = 1;
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(conn->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    BIO *b = tls_bio_new(conn);
    SSL_set_bio(conn->ssl, b, b);
    SSL_set_connect_state(conn->ssl);
    watch(conn, UV_READABLE);
    handshake(conn);
}

static void connect_next(pgw_h2conn_t *conn);

static void on_poll(uv_poll_t *handle, int status, int events)
{
    pgw_h2conn_t *conn = ((struct sock *)handle->data)->conn;

    if (status < 0)
        conn->poll_events = 0; /* libuv has stopped the handle (it says EBADF for POLLERR: the socket knows better) */
    if (conn->state == CS_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        else if (err == 0 && status < 0)
            err = -status;
        if (err != 0) {
            snprintf(conn->error, sizeof(conn->error), "Failed to connect to %s port %s: %s", conn->host, conn->port,
                     strerror(err));
            close_sock(conn);
            connect_next(conn);
            return;
        }
        start_tls(conn);
        return;
    }
    if (status < 0) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(conn->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "Recv failure: %s", err != 0 ? strerror(err) : uv_strerror(status));
        return;
    }
    if ((events & UV_WRITABLE) != 0) {
        write_out(conn);
        if (conn->state == CS_CLOSED)
            return;
        flush(conn); /* what nghttp2 still holds (see flush) */
        if (conn->state == CS_CLOSED)
            return;
    }
    if ((events & UV_READABLE) == 0)
        return;
    h2o_iovec_t room = h2o_buffer_reserve(&conn->in, READ_SIZE);
    ssize_t n;
    while ((n = read(conn->fd, room.base, READ_SIZE)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "Recv failure: %s", strerror(errno));
        return;
    }
    if (n == 0) {
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "connection closed by the server");
        return;
    }
    conn->in->size += (size_t)n;
    if (conn->state == CS_HANDSHAKE) {
        handshake(conn);
        return;
    }
    read_plain(conn);
    flush(conn);
}

static void connect_next(pgw_h2conn_t *conn)
{
    for (; conn->next_addr != NULL; conn->next_addr = conn->next_addr->ai_next) {
        struct addrinfo *ai = conn->next_addr;
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) {
            snprintf(conn->error, sizeof(conn->error), "Failed to connect to %s port %s: %s", conn->host, conn->port,
                     strerror(errno));
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            snprintf(conn->error, sizeof(conn->error), "Failed to connect to %s port %s: %s", conn->host, conn->port,
                     strerror(errno));
            close(fd);
            continue;
        }
        conn->next_addr = ai->ai_next;
        conn->fd = fd;
        conn->sock = h2o_mem_alloc(sizeof(*conn->sock));
        conn->sock->conn = conn;
        uv_poll_init_socket(conn->loop, &conn->sock->poll, fd);
        conn->sock->poll.data = conn->sock;
        conn->poll_events = 0;
        conn->state = CS_CONNECTING;
        watch(conn, UV_WRITABLE);
        return;
    }
    conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "%s", conn->error[0] != '\0' ? conn->error : "Couldn't connect to server");
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pgw_h2conn_t *conn = req->data;
    --conn->handles;
    if (conn->state == CS_CLOSED) { /* failed (timed out) meanwhile */
        if (res != NULL)
            uv_freeaddrinfo(res);
        conn_release(conn);
        return;
    }
    if (status != 0) {
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "Could not resolve host: %s (%s)", conn->host, uv_strerror(status));
        return;
    }
    conn->addrs = conn->next_addr = res;
    connect_next(conn);
}

/* ---- the connection's life ---- */

/* Frees the connection once it is closed, its handles are, and no paused stream still holds it. */
static void conn_release(pgw_h2conn_t *conn)
{
    if (conn->state != CS_CLOSED || conn->handles != 0 || !h2o_linklist_is_empty(&conn->streams))
        return;
    if (conn->session != NULL)
        nghttp2_session_del(conn->session);
    if (conn->ssl != NULL)
        SSL_free(conn->ssl);
    if (conn->addrs != NULL)
        uv_freeaddrinfo(conn->addrs);
    h2o_buffer_dispose(&conn->in);
    h2o_buffer_dispose(&conn->out);
    free(conn->host);
    free(conn->port);
    free(conn);
}

static void on_timer_close(uv_handle_t *handle)
{
    pgw_h2conn_t *conn = handle->data;
    --conn->handles;
    conn_release(conn);
}

/*
 * Ends the connection: no stream any more (each ends with `result`, or as complete if its answer was; streams not yet
 * sent were never processed, or go elsewhere), the owner told, the socket closed. Its memory goes once its handles are
 * closed, so that the callers up the stack (nghttp2 excepted: it is never running here) may still look at `state`.
 */
static void conn_fail(pgw_h2conn_t *conn, pgw_attempt_result_t result, const char *fmt, ...)
{
    if (conn->state == CS_CLOSED)
        return;
    char error[sizeof(conn->error)]; /* fmt's arguments may be conn->error itself */
    va_list args;
    va_start(args, fmt);
    vsnprintf(error, sizeof(error), fmt, args);
    va_end(args);
    memcpy(conn->error, error, sizeof(error));
    int was_ready = conn->state == CS_READY;
    conn->state = CS_CLOSED;
    uv_timer_stop(&conn->timer);
    close_sock(conn);
    /* streams not sent yet: this connection's failure is theirs, unless it only failed to speak h2 */
    while (!h2o_linklist_is_empty(&conn->pending)) {
        pgw_h2stream_t *st = H2O_STRUCT_FROM_MEMBER(pgw_h2stream_t, link, conn->pending.next);
        stream_end(st, result, conn->error);
    }
    /* streams sent: complete if their answer was, else cut; a paused one keeps its result until the transfer resumes
     * (and keeps the connection's memory: conn_release) */
    for (h2o_linklist_t *node = conn->streams.next; node != &conn->streams;) {
        pgw_h2stream_t *st = H2O_STRUCT_FROM_MEMBER(pgw_h2stream_t, link, node);
        node = node->next;
        if (st->closed)
            continue;
        st->closed = 1;
        if (st->end_stream) {
            st->result = PGW_ATTEMPT_OK;
        } else {
            st->result = was_ready ? PGW_ATTEMPT_RETRYABLE : result;
            snprintf(st->errstr, sizeof(st->errstr), "HTTP/2 stream %d was not closed cleanly: %s", st->id, conn->error);
        }
        if (!st->paused) {
            stream_end(st, st->result, st->result == PGW_ATTEMPT_OK ? NULL : st->errstr);
            node = conn->streams.next; /* the transfer may have ended other streams of this connection */
        }
    }
    count_socket(conn);
    conn->cb->on_close(conn, result == PGW_ATTEMPT_ELSEWHERE);
    uv_close((uv_handle_t *)&conn->timer, on_timer_close);
}

static void on_timer(uv_timer_t *timer)
{
    pgw_h2conn_t *conn = timer->data;
    if (conn->state == CS_RESOLVING && conn->error[0] != '\0') { /* resolution could not start */
        conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "%s", conn->error);
        return;
    }
    if (conn->state != CS_READY) {
        conn_fail(conn, PGW_ATTEMPT_FAILED, "Connection timed out after %d milliseconds", CONNECT_TIMEOUT_MS);
        return;
    }
    if (conn->num_streams == 0) /* idle too long */
        pgw_h2conn_close_idle(conn);
}

static void idle_check(pgw_h2conn_t *conn)
{
    if (conn->state != CS_READY || conn->num_streams != 0)
        return;
    if (conn->goaway) { /* the server is done with it */
        pgw_h2conn_close_idle(conn);
        return;
    }
    uv_timer_start(&conn->timer, on_timer, IDLE_TIMEOUT_MS, 0);
}

pgw_h2conn_t *pgw_h2conn_open(uv_loop_t *loop, SSL_CTX *ssl_ctx, const pgw_h2conn_target_t *target,
                              const pgw_h2conn_callbacks_t *cb, void *data, atomic_ullong *sockets)
{
    pgw_h2conn_t *conn = h2o_mem_alloc(sizeof(*conn));
    memset(conn, 0, sizeof(*conn));
    conn->loop = loop;
    conn->cb = cb;
    conn->data = data;
    conn->sockets = sockets;
    conn->host = h2o_strdup(NULL, target->host, SIZE_MAX).base;
    conn->port = h2o_strdup(NULL, target->port, SIZE_MAX).base;
    conn->verify = target->verify;
    conn->fd = -1;
    h2o_linklist_init_anchor(&conn->pending);
    h2o_linklist_init_anchor(&conn->streams);
    h2o_buffer_init(&conn->in, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&conn->out, &h2o_socket_buffer_prototype);
    uv_timer_init(loop, &conn->timer);
    conn->timer.data = conn;
    conn->handles = 1;
    uv_timer_start(&conn->timer, on_timer, CONNECT_TIMEOUT_MS, 0);

    conn->ssl = SSL_new(ssl_ctx);
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_set_alpn_protos(conn->ssl, alpn, sizeof(alpn) - 1);
    struct in6_addr addr;
    int is_ip = inet_pton(AF_INET, conn->host, &addr) == 1 || inet_pton(AF_INET6, conn->host, &addr) == 1;
    if (!is_ip)
        SSL_set_tlsext_host_name(conn->ssl, conn->host);
    if (conn->verify) {
        SSL_set_verify(conn->ssl, SSL_VERIFY_PEER, NULL);
        if (is_ip)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(conn->ssl), conn->host);
        else
            SSL_set1_host(conn->ssl, conn->host);
    } else {
        SSL_set_verify(conn->ssl, SSL_VERIFY_NONE, NULL);
    }

    conn->state = CS_RESOLVING;
    conn->gai.data = conn;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    ++conn->handles;
    int rv = uv_getaddrinfo(loop, &conn->gai, on_resolved, conn->host, conn->port, &hints);
    if (rv != 0) {
        --conn->handles;
        snprintf(conn->error, sizeof(conn->error), "Could not resolve host: %s (%s)", conn->host, uv_strerror(rv));
        uv_timer_start(&conn->timer, on_timer, 0, 0); /* reported from the loop: nothing calls back before this returns */
    }
    return conn;
}

void *pgw_h2conn_data(pgw_h2conn_t *conn)
{
    return conn->data;
}

size_t pgw_h2conn_room(pgw_h2conn_t *conn)
{
    if (conn->state == CS_CLOSED || conn->goaway)
        return 0;
    size_t max = STREAMS_BEFORE_SETTINGS;
    if (conn->session != NULL)
        max = nghttp2_session_get_remote_settings(conn->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (max > MAX_STREAMS_PER_CONNECTION)
        max = MAX_STREAMS_PER_CONNECTION;
    return conn->num_streams < max ? max - conn->num_streams : 0;
}

int pgw_h2conn_draining(pgw_h2conn_t *conn)
{
    return conn->state == CS_CLOSED || conn->goaway;
}

void pgw_h2conn_close_idle(pgw_h2conn_t *conn)
{
    if (conn->num_streams != 0 || conn->state == CS_CLOSED)
        return;
    if (conn->state == CS_READY) { /* a GOAWAY, so that the server knows this end was meant */
        nghttp2_session_terminate_session(conn->session, NGHTTP2_NO_ERROR);
        flush(conn);
    }
    conn_fail(conn, PGW_ATTEMPT_RETRYABLE, "connection closed");
}

void pgw_h2conn_submit(pgw_h2conn_t *conn, pgw_attempt_t *a, const char *authority, const char *path, pgw_h2stream_t **ref)
{
    pgw_h2stream_t *st = h2o_mem_alloc(sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->conn = conn;
    st->a = a;
    st->ref = ref;
    *ref = st;
    st->authority = authority;
    st->path = path;
    st->content_length = -1;
    if (conn->state == CS_CLOSED)
        h2o_fatal("h2conn: a stream submitted to a closed connection");
    ++conn->num_streams;
    h2o_linklist_insert(&conn->pending, &st->link);
    count_socket(conn);
    if (conn->state != CS_READY)
        return;                  /* sent once the connection is (become_ready); the connect deadline runs */
    uv_timer_stop(&conn->timer); /* the idle timer */
    submit(st);
    flush(conn);
}

void pgw_h2stream_cancel(pgw_h2stream_t *st)
{
    pgw_h2conn_t *conn = st->conn;
    int reset = st->id != 0 && !st->closed && conn->state == CS_READY;
    int32_t id = st->id;
    size_t held = st->held != NULL ? st->held->size : 0;
    st->ref = NULL;
    give_back(st, held);
    stream_free(st);
    if (reset) { /* Poe must stop generating the answer now, not when the connection next sends something */
        nghttp2_submit_rst_stream(conn->session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        flush(conn);
    }
}

void pgw_h2stream_resume(pgw_h2stream_t *st)
{
    pgw_h2conn_t *conn = st->conn;
    if (!st->paused)
        return;
    st->paused = 0;
    size_t len = st->held->size;
    switch (deliver(st, st->held->bytes, len)) {
    case 0:
        give_back(st, len);
        h2o_buffer_consume(&st->held, len);
        break;
    case 1:
        st->paused = 1;
        return;
    default:
        return; /* cancelled */
    }
    if (st->closed) {
        stream_end(st, st->result, st->result == PGW_ATTEMPT_OK ? NULL : st->errstr);
        return;
    }
    flush(conn);
}

int pgw_h2stream_body_sent(pgw_h2stream_t *st)
{
    return st->body_off >= st->a->body_len;
}
