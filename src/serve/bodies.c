/* poe-gateway: MIT licence. Request bodies before the handler: who may send one, and how many bytes may be in flight.
 *
 * libh2o 2.2.5 reads a whole request body into memory before it calls a handler: up to max_body_bytes per HTTP/1.1
 * request, and as much per HTTP/2 stream, a hundred streams to a connection. Left alone, clients without a key could
 * make the gateway hold gigabytes before the handler ever looked at a key. This module decides, as soon as a request's
 * head is in, whether its body will be read at all:
 *
 * - a request without a valid key (x-api-key or Authorization: Bearer; with gateway.auth: tailscale a request without
 *   any credential is left to the handler's whois) has its body withheld;
 * - any other request reserves its body's declared length (Content-Length, content-length) against
 *   gateway.max_body_bytes_per_connection and gateway.max_body_bytes_in_flight, and is withheld when it does not fit.
 *   The reservation lasts until the request is disposed (its answer is over, or its connection or stream closed
 *   first): libh2o holds the body that long. A body that can grow past what it declared (chunked HTTP/1.1; HTTP/2,
 *   where libh2o checks content-length only at the end) is also counted as it arrives, after each read; one that
 *   passes a limit on the way can no longer be answered (libh2o runs a request only once its body is complete), so
 *   its HTTP/2 stream is refused (RST_STREAM REFUSED_STREAM) or its HTTP/1.1 connection closed.
 *
 * A withheld request reaches the handler at once, without its body, and pgw_bodies_verdict() tells why: the handler
 * answers 401, or 503 overloaded_error, with the gateway's usual error body, access log line and metrics.
 *
 * How. libh2o is linked dynamically and calls its own exported functions through its PLT, so a function of the same
 * name defined in the program is the one those calls reach (src/serve/uvread.c does the same for uv_read_start). Each
 * definition below calls libh2o's own (dlsym RTLD_NEXT) and acts around it:
 *
 * - phr_parse_request (lib/http1.c): once an HTTP/1.x head has parsed, a withheld request loses Content-Length and
 *   Transfer-Encoding from the parsed header list and gets `Connection: close`. libh2o then sees a request without a
 *   body: it stops reading the socket and runs the handler; the answer goes out and the connection closes with the
 *   body unread. libh2o's one caller passes &conn->req.input.method.base for the method: that is how the request is
 *   found.
 * - h2o_socket_close: such a connection would be closed with the body's bytes unread, and the kernel answers the next
 *   ones with a reset that can cost a client still sending the answer it has not read yet. It lingers instead (see
 *   LINGER_MS): half-closed after the answer, what still comes is read and dropped.
 * - h2o_hpack_parse_headers (lib/http2/connection.c): once the HEADERS of a stream that stays open have parsed, a
 *   withheld stream loses its body buffer; libh2o then takes the request as complete and runs it at once.
 * - h2o_http2_stream_reset: libh2o meets DATA on a stream that is not receiving a body with RST_STREAM(STREAM_CLOSED)
 *   and a reset that discards an answer not yet written. For a withheld stream the RST_STREAM it has just queued is
 *   taken back and the reset skipped: the DATA is dropped unread (libh2o still credits the connection's window).
 * - h2o_http2_stream_proceed: once a withheld stream's answer is written, RST_STREAM(NO_ERROR) follows, which tells the
 *   client to stop sending a body that is no longer wanted.
 *
 * Growing bodies are watched from src/serve/uvread.c's read trampoline (pgw_uvread_observe), which runs after libh2o has
 * handled each read.
 *
 * Sizing. libh2o's buffers start at 8 KB and double as a body fills them, copying what they hold each time: more than a
 * copy of a 50 KB body. An admitted body of declared length (so within the limits, from a known caller) gets its room
 * at once instead: an HTTP/1.1 socket's input for the head and the body, after the read that brought the head
 * (presize); an HTTP/2 stream's body buffer, with its HEADERS; an HTTP/2 connection's input, for two frames ahead of what
 * the streams still have to send (size_http2_input). bench/run.mjs counts the copies that remain (bench/copies/).
 *
 * Costs. Every HTTP/1.x request: a scan of its parsed headers for the two framing ones (libh2o's own is out of reach);
 * every HTTP/2 request: a test. A request with a body, besides: one more key check (two SHA-256 of a few dozen bytes,
 * about a microsecond), a lookup in the worker's tree of connections with bodies in flight (O(log n)) and an atomic
 * compare-and-swap. Each read, while some body of the worker grows: a lookup in its tree of sockets, then on that
 * socket a look at each growing body. While some request of the worker is withheld: a lookup in a third tree at each
 * handler call, stream reset and end of an HTTP/2 answer. A withheld body costs no memory.
 *
 * What this relies on in libh2o 2.2.5: the calls above going through its PLT (objdump shows it for Debian's build),
 * their order in http1.c and http2/connection.c, and the layout of its HTTP/2 connection and stream, from Debian's
 * <h2o/http2_internal.h> (the same build as the library). When the program's definitions are not the ones libh2o's
 * calls reach, pgw_bodies_init() says so and bodies are read first, as libh2o does by itself.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <search.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include "serve/auth.h"
#include "serve/bodies.h"
#include "common/log.h"
#include "serve/server.h"
#include "serve/tailnet.h"
#include "serve/uvread.h"

#define MODULE_NAME "bodies"

/* picohttpparser's header entry (name == NULL for a continuation line), as libh2o passes it */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

/* libh2o's own definitions */
static struct {
    int (*parse_request)(const char *, size_t, const char **, size_t *, const char **, size_t *, int *, struct phr_header *,
                         size_t *, size_t);
    int (*parse_headers)(h2o_req_t *, h2o_hpack_header_table_t *, const uint8_t *, size_t, int *, size_t *, h2o_cache_digests_t **,
                         const char **);
    void (*stream_reset)(h2o_http2_conn_t *, h2o_http2_stream_t *);
    void (*stream_proceed)(h2o_http2_conn_t *, h2o_http2_stream_t *);
    void (*socket_close)(h2o_socket_t *);
} real;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *find_real(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (fn == NULL) {
        fprintf(stderr, "poe-gateway: %s not found in libh2o: %s\n", name, dlerror());
        abort();
    }
    return fn;
}

static void init(void)
{
    *(void **)&real.parse_request = find_real("phr_parse_request");
    *(void **)&real.parse_headers = find_real("h2o_hpack_parse_headers");
    *(void **)&real.stream_reset = find_real("h2o_http2_stream_reset");
    *(void **)&real.stream_proceed = find_real("h2o_http2_stream_proceed");
    *(void **)&real.socket_close = find_real("h2o_socket_close");
}

/* ---- bookkeeping ---- */

/* The bytes admitted, gateway-wide. */
static atomic_size_t in_flight;

/* A connection with bodies in flight: the bytes its requests hold, and how many reservations refer to it. */
typedef struct st_conn_load_t {
    h2o_conn_t *conn;
    size_t bytes;
    size_t refs;
} conn_load_t;

/* A socket with bodies that grow as they arrive: the reservations topped up after its reads. */
typedef struct st_sock_bodies_t {
    h2o_socket_t *sock;
    h2o_linklist_t growing;
} sock_bodies_t;

/* A request's reservation, in its pool: released when the pool is cleared. */
typedef struct st_reservation_t {
    h2o_req_t *req;
    conn_load_t *load;
    size_t bytes;
    sock_bodies_t *sock;        /* while the body may still grow past `bytes` */
    h2o_linklist_t link;        /* in sock->growing */
    h2o_http2_stream_t *stream; /* HTTP/2: the body is stream->_req_body; NULL for HTTP/1.1 */
    size_t head;                /* HTTP/1.1: the bytes of the head, before the body in the socket's input */
    h2o_socket_t *presize;      /* HTTP/1.1 with Content-Length: its socket, until its input is sized for the body */
} reservation_t;

/* A request whose body is withheld, in its pool: forgotten when the pool is cleared. */
typedef struct st_withheld_t {
    h2o_req_t *req;
    pgw_body_verdict_t verdict;
    unsigned reset : 1; /* HTTP/2: libh2o reset the stream for another reason; no RST_STREAM(NO_ERROR) after the answer */
} withheld_t;

/* Per worker (a worker's requests live and die on its thread): tsearch trees by connection, by socket, by request. */
static __thread void *loads;
static __thread void *socks;
static __thread void *withheld;
static __thread size_t num_withheld;
/* The HTTP/1.1 body whose socket input is to be sized at the socket's next read (see presize()); one at a time: a head
 * and the end of the read that brought it follow each other, and a second head before then only loses the first its
 * sizing. */
static __thread reservation_t *presizing;

#define COMPARE_BY(name, type, field)                                                                                              \
    static int name(const void *x, const void *y)                                                                                  \
    {                                                                                                                              \
        uintptr_t a = (uintptr_t)((const type *)x)->field, b = (uintptr_t)((const type *)y)->field;                                \
        return a < b ? -1 : a > b;                                                                                                 \
    }
COMPARE_BY(compare_loads, conn_load_t, conn)
COMPARE_BY(compare_socks, sock_bodies_t, sock)
COMPARE_BY(compare_withheld, withheld_t, req)
#undef COMPARE_BY

static void *find(const void *key, void **tree, int (*compare)(const void *, const void *))
{
    void **node = *tree != NULL ? tfind(key, tree, compare) : NULL;
    return node != NULL ? *node : NULL;
}

static void insert(void *item, void **tree, int (*compare)(const void *, const void *))
{
    if (tsearch(item, tree, compare) == NULL)
        h2o_fatal("no memory");
}

/* The gateway's worker that owns `conn`, or NULL (a context that is not a worker's: nothing is checked there). */
static pgw_worker_t *worker_of(h2o_conn_t *conn)
{
    pgw_server_t *server = pgw_server;
    if (server == NULL || server->workers == NULL || conn == NULL)
        return NULL;
    for (unsigned i = 0; i != server->num_workers; ++i)
        if (&server->workers[i].ctx == conn->ctx)
            return server->workers + i;
    return NULL;
}

/* Whether the handler may serve the caller: a valid key, or (as routing.c's authenticate()) no credential at all where
 * tailscaled may know the caller. */
static int may_be_served(const pgw_config_t *conf, h2o_iovec_t x_api_key, h2o_iovec_t authorization)
{
    h2o_iovec_t credential = pgw_auth_credential(x_api_key, authorization);
    const pgw_key_t *key;
    if (pgw_auth_identify(conf, credential, &key) != NULL)
        return 1;
    const char *socket = conf->tailscale_socket != NULL ? conf->tailscale_socket : PGW_DEFAULT_TAILSCALE_SOCKET;
    return conf->auth_tailscale && credential.base == NULL && pgw_tailnet_available(socket);
}

/* Adds `bytes` to the connection's and the gateway's bodies when `need` (at least `bytes`) fits under both limits. */
static pgw_body_verdict_t take(const pgw_config_t *conf, conn_load_t *load, size_t bytes, size_t need)
{
    size_t per_connection = conf->max_body_bytes_per_connection, gateway = conf->max_body_bytes_in_flight;
    if (load->bytes > per_connection || need > per_connection - load->bytes)
        return PGW_BODY_OVER_CONNECTION;
    size_t total = atomic_load_explicit(&in_flight, memory_order_relaxed);
    do {
        if (total > gateway || need > gateway - total)
            return PGW_BODY_OVER_GATEWAY;
    } while (!atomic_compare_exchange_weak_explicit(&in_flight, &total, total + bytes, memory_order_relaxed, memory_order_relaxed));
    load->bytes += bytes;
    return PGW_BODY_READ;
}

static void stop_growing(reservation_t *r)
{
    sock_bodies_t *entry = r->sock;
    if (entry == NULL)
        return;
    r->sock = NULL;
    h2o_linklist_unlink(&r->link);
    if (h2o_linklist_is_empty(&entry->growing)) {
        tdelete(entry, &socks, compare_socks);
        free(entry);
    }
}

static void on_reservation_dispose(void *p)
{
    reservation_t *r = p;
    if (presizing == r)
        presizing = NULL;
    stop_growing(r);
    atomic_fetch_sub_explicit(&in_flight, r->bytes, memory_order_relaxed);
    r->load->bytes -= r->bytes;
    if (--r->load->refs == 0) {
        tdelete(r->load, &loads, compare_loads);
        free(r->load);
    }
}

/* Reserves `length` bytes for `req`'s body (SIZE_MAX: unknown, counted from nothing, which needs room for a byte).
 * `grows`: the body may pass `length` and is watched after each read. */
static pgw_body_verdict_t reserve(const pgw_config_t *conf, h2o_req_t *req, size_t length, int grows, h2o_http2_stream_t *stream,
                                  size_t head)
{
    conn_load_t key = {req->conn}, *load = find(&key, &loads, compare_loads);
    size_t bytes = length != SIZE_MAX ? length : 0;
    pgw_body_verdict_t verdict = take(conf, load != NULL ? load : &key, bytes, bytes != 0 ? bytes : 1);
    if (verdict != PGW_BODY_READ)
        return verdict;
    if (load == NULL) {
        load = h2o_mem_alloc(sizeof(*load));
        *load = key;
        insert(load, &loads, compare_loads);
    }
    ++load->refs;

    reservation_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_reservation_dispose);
    *r = (reservation_t){.req = req, .load = load, .bytes = bytes, .stream = stream, .head = head};
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (stream == NULL && !grows && bytes != 0 && sock != NULL) {
        r->presize = sock;
        presizing = r;
    }
    if (grows && sock != NULL) {
        sock_bodies_t skey = {sock}, *entry = find(&skey, &socks, compare_socks);
        if (entry == NULL) {
            entry = h2o_mem_alloc(sizeof(*entry));
            entry->sock = sock;
            h2o_linklist_init_anchor(&entry->growing);
            insert(entry, &socks, compare_socks);
        }
        r->sock = entry;
        h2o_linklist_insert(&entry->growing, &r->link);
    }
    return PGW_BODY_READ;
}

static void on_withheld_dispose(void *p)
{
    tdelete(p, &withheld, compare_withheld);
    --num_withheld;
}

static withheld_t *find_withheld(h2o_req_t *req)
{
    withheld_t key = {req};
    return num_withheld != 0 ? find(&key, &withheld, compare_withheld) : NULL;
}

/* Decides on the body of `req`: served or not, then reserved or not. A withheld body is remembered. */
static pgw_body_verdict_t admit(pgw_worker_t *w, h2o_req_t *req, h2o_iovec_t x_api_key, h2o_iovec_t authorization, size_t length,
                                int grows, h2o_http2_stream_t *stream, size_t head)
{
    const pgw_config_t *conf = w->gen->conf;
    size_t max = req->conn->ctx->globalconf->max_request_entity_size;
    pgw_body_verdict_t verdict = PGW_BODY_UNAUTHENTICATED;

    if (may_be_served(conf, x_api_key, authorization))
        verdict = reserve(conf, req, length == SIZE_MAX || length < max ? length : max, grows, stream, head);
    if (verdict != PGW_BODY_READ) {
        withheld_t *m = h2o_mem_alloc_shared(&req->pool, sizeof(*m), on_withheld_dispose);
        *m = (withheld_t){req, verdict};
        insert(m, &withheld, compare_withheld);
        ++num_withheld;
    }
    return verdict;
}

pgw_body_verdict_t pgw_bodies_verdict(h2o_req_t *req)
{
    withheld_t *m = find_withheld(req);
    return m != NULL ? m->verdict : PGW_BODY_READ;
}

/* ---- bodies that grow as they arrive ---- */

#define RST_STREAM_SIZE (H2O_HTTP2_FRAME_HEADER_SIZE + 4)

static void encode_rst_stream(uint8_t *dst, uint32_t stream_id, uint32_t code)
{
    h2o_http2_encode32u(h2o_http2_encode_frame_header(dst, 4, H2O_HTTP2_FRAME_TYPE_RST_STREAM, 0, (int32_t)stream_id), code);
}

static void queue_rst_stream(h2o_http2_conn_t *conn, uint32_t stream_id, uint32_t code)
{
    h2o_iovec_t dst = h2o_buffer_reserve(&conn->_write.buf, RST_STREAM_SIZE);
    encode_rst_stream((uint8_t *)dst.base, stream_id, code);
    conn->_write.buf->size += RST_STREAM_SIZE;
    h2o_http2_conn_request_write(conn);
}

/* The bytes of the body received so far. */
static size_t body_so_far(reservation_t *r)
{
    if (r->stream != NULL)
        return r->stream->_req_body != NULL ? r->stream->_req_body->size : 0;
    h2o_buffer_t *input = r->sock->sock->input;
    return input->size > r->head ? input->size - r->head : 0;
}

/* Ends a body that passed a limit on the way (see the top of the file). `r` may be disposed by the time it returns. An
 * HTTP/1.1 body grows only while libh2o reads it, that is with its read callback set. */
static void cut(reservation_t *r, h2o_socket_t *sock, pgw_body_verdict_t why)
{
    pgw_log_warn(MODULE_NAME, "a request body passed gateway.%s after %zu bytes: %s",
                 why == PGW_BODY_OVER_CONNECTION ? "max_body_bytes_per_connection" : "max_body_bytes_in_flight", r->bytes,
                 r->stream != NULL ? "its stream is refused" : "its connection is closed");
    if (r->stream != NULL) {
        h2o_http2_conn_t *conn = (h2o_http2_conn_t *)r->req->conn;
        if (conn->state < H2O_HTTP2_CONN_STATE_IS_CLOSING)
            queue_rst_stream(conn, r->stream->stream_id, -H2O_HTTP2_ERROR_REFUSED_STREAM);
        real.stream_reset(conn, r->stream);
    } else if (sock->_cb.read != NULL) {
        sock->_cb.read(sock, h2o_socket_error_closed); /* libh2o's own way out of a failed read: it closes the connection */
    }
}

/* libh2o's request for room before each read of a socket (lib/common/socket/uv-binding.c.h, and SSL_read's buffer) */
#define READ_ROOM 4096

/* Sizes the input of an HTTP/1.1 socket for the rest of an admitted body of known length, before its next read.
 *
 * libh2o 2.2.5 reads an HTTP/1.1 body into the socket's input, after the head, and hands the handler that buffer
 * (lib/http1.c); the buffer starts at 8 KB and doubles when a read needs room (h2o_buffer_reserve), each time copying
 * what it holds: 8, 16, 32 and 64 KB for a 50 KB body, more than one copy of it in all. Sized once to head + body (and
 * a read's room), it takes the body where it is. Only between reads, and only while libh2o is still reading this body:
 * nothing points into the input then (the head's strings were copied to the request's pool, lib/http1.c
 * fixup_request, because the buffer moves), and the body's bytes have been admitted: its length is reserved against
 * the gateway's limits and under max_request_entity_size, and the caller is known (reserve(), admit()). */
static void presize(reservation_t *r)
{
    h2o_socket_t *sock = r->presize;
    size_t want = r->head + r->bytes;
    presizing = NULL;
    r->presize = NULL;
    if (sock->_cb.read != NULL && sock->input->size < want)
        h2o_buffer_reserve(&sock->input, want - sock->input->size + READ_ROOM);
}

/* The most room made ahead in an HTTP/2 connection's input (size_http2_input): two frames. The room is for any stream's
 * frames, and a read fills what room there is, while the limits above are checked between reads: a bigger read would
 * let a body that declared nothing pass a limit further before it is cut, or even complete unchecked (t/86bodies) */
#define MAX_INPUT_AHEAD (32 * 1024)

/* Makes room in an HTTP/2 socket's input for the `expected` bytes of DATA frames still to come for its admitted bodies.
 *
 * libh2o parses the frames of an HTTP/2 connection in the socket's input, which starts at 8 KB, doubles when a read
 * needs room, and goes back to nothing when all of it is parsed: a DATA frame of 16 KB never fits the first buffer, so
 * each one is copied as its buffer grows (about half a copy of a body). With the room for what the streams have
 * declared and not yet sent, the frames are read where they will be parsed. What it may copy once is what the input
 * holds (a frame's start). Only an input smaller than that is sized: h2o_buffer_reserve doubles a buffer's capacity
 * until the room fits, so asking a big buffer whose room is used up for more would ratchet it up read after read (and
 * reads with it); libh2o's own reservations move the bytes to the front of such a buffer. Between reads only, as
 * presize(): libh2o itself moves this buffer before every read. */
static void size_http2_input(h2o_socket_t *sock, size_t expected)
{
    h2o_buffer_t *input = sock->input;
    size_t room = (expected < MAX_INPUT_AHEAD ? expected : MAX_INPUT_AHEAD) + READ_ROOM;
    if (sock->_cb.read != NULL && (input->bytes == NULL || input->capacity < input->size + room))
        h2o_buffer_reserve(&sock->input, room);
}

/* The bytes of the DATA frames that carry `n` bytes of body (frames of 16 KB, libh2o's SETTINGS_MAX_FRAME_SIZE). */
static size_t data_frames_size(size_t n)
{
    return n + H2O_HTTP2_FRAME_HEADER_SIZE * ((n + 16383) / 16384);
}

/* After libh2o has handled a read of `stream` (its data is libh2o's socket): sizes the input for an HTTP/1.1 body
 * whose head it brought, or for the HTTP/2 bodies still to come, tops up the reservations of the socket's growing
 * bodies, and cuts those that no longer fit. */
static void on_read(uv_stream_t *stream)
{
    h2o_socket_t *entry_sock = stream->data;
    if (presizing != NULL && presizing->presize == entry_sock)
        presize(presizing);
    sock_bodies_t key = {entry_sock}, *entry;
    if (socks == NULL || (entry = find(&key, &socks, compare_socks)) == NULL)
        return;
    pgw_worker_t *w = worker_of(H2O_STRUCT_FROM_MEMBER(reservation_t, link, entry->growing.next)->req->conn);
    if (w == NULL)
        return;

    /* look at every body first, then act: stopping or cutting one changes the list (and the last one frees `entry`) */
    size_t num = 0, num_done = 0;
    for (h2o_linklist_t *l = entry->growing.next; l != &entry->growing; l = l->next)
        ++num;
    struct {
        reservation_t *r;
        pgw_body_verdict_t cut;
    } done[num];
    size_t expected = 0; /* HTTP/2: the frames that the bodies still receiving have declared and not sent yet */
    for (h2o_linklist_t *l = entry->growing.next; l != &entry->growing; l = l->next) {
        reservation_t *r = H2O_STRUCT_FROM_MEMBER(reservation_t, link, l);
        size_t now = body_so_far(r);
        /* complete when libh2o stops receiving it (it stops reading an HTTP/1.1 socket once a body is whole); a body
         * completed by this very read is already in a handler: it is counted, whatever the limits */
        int complete = r->stream != NULL ? r->stream->state != H2O_HTTP2_STREAM_STATE_RECV_BODY : entry_sock->_cb.read == NULL;
        pgw_body_verdict_t verdict = PGW_BODY_READ;
        if (now > r->bytes) {
            if (complete) {
                atomic_fetch_add_explicit(&in_flight, now - r->bytes, memory_order_relaxed);
                r->load->bytes += now - r->bytes;
                r->bytes = now;
            } else if ((verdict = take(w->gen->conf, r->load, now - r->bytes, now - r->bytes)) == PGW_BODY_READ) {
                r->bytes = now;
            }
        }
        if (complete || verdict != PGW_BODY_READ) {
            done[num_done].r = r;
            done[num_done++].cut = verdict;
        } else if (r->stream != NULL && r->bytes > now) {
            expected += data_frames_size(r->bytes - now);
        }
    }
    int cutting = 0;
    for (size_t i = 0; i != num_done; ++i)
        cutting |= done[i].cut != PGW_BODY_READ;
    if (expected != 0 && !cutting)
        size_http2_input(entry_sock, expected);
    for (size_t i = 0; i != num_done; ++i) {
        stop_growing(done[i].r);
        if (done[i].cut != PGW_BODY_READ)
            cut(done[i].r, entry_sock, done[i].cut);
    }
}

/* ---- HTTP/1.x ---- */

static int is_header(const struct phr_header *h, const char *name, size_t len)
{
    return h->name != NULL && h2o_lcstris(h->name, h->name_len, name, len);
}

/* The body libh2o will read after this head (lib/http1.c: the last Transfer-Encoding, else the first Content-Length).
 * Returns 1 with its length (SIZE_MAX when chunked); 0 when there is none, or when libh2o refuses the framing (400) or
 * the length (413) before reading anything. */
static int http1_body(const struct phr_header *headers, size_t num, size_t max, size_t *length)
{
    const struct phr_header *entity = NULL;
    for (size_t i = 0; i != num; ++i) {
        if (is_header(headers + i, H2O_STRLIT("transfer-encoding")) ||
            (entity == NULL && is_header(headers + i, H2O_STRLIT("content-length"))))
            entity = headers + i;
    }
    if (entity == NULL)
        return 0;
    if (entity->name_len == sizeof("transfer-encoding") - 1) {
        *length = SIZE_MAX;
        return h2o_lcstris(entity->value, entity->value_len, H2O_STRLIT("chunked"));
    }
    *length = h2o_strtosize(entity->value, entity->value_len);
    return *length != SIZE_MAX && *length != 0 && *length <= max;
}

/* libh2o lower-cases header names in place: a writable name, per thread */
static __thread char connection_name[] = "connection";

/* Makes the parsed head one without a body, on a connection that closes after the answer. Returns the new number of
 * headers (never more than `num`: the entity header is gone). */
static size_t http1_withhold(struct phr_header *headers, size_t num)
{
    size_t kept = 0;
    int drop = 0;
    for (size_t i = 0; i != num; ++i) {
        const struct phr_header *h = headers + i;
        if (h->name != NULL) /* a continuation line goes with the header it continues */
            drop = is_header(h, H2O_STRLIT("content-length")) || is_header(h, H2O_STRLIT("transfer-encoding")) ||
                   is_header(h, H2O_STRLIT("connection"));
        if (!drop)
            headers[kept++] = *h;
    }
    headers[kept++] = (struct phr_header){connection_name, sizeof(connection_name) - 1, "close", sizeof("close") - 1};
    return kept;
}

/* The sockets of withheld HTTP/1.x requests, which linger when libh2o closes them; and this worker's loop. */
static __thread void *lingering;
static __thread uv_loop_t *loop;

static int compare_pointers(const void *x, const void *y)
{
    return (uintptr_t)x < (uintptr_t)y ? -1 : (uintptr_t)x > (uintptr_t)y;
}

/* A connection closing with a body unread: closed at once, the kernel would answer the client's next bytes with a
 * reset, and a client still sending could lose the answer before reading it. So the gateway half-closes it (cleartext),
 * reads and drops what still comes, and closes it when the client does, or after LINGER_MS. */
#define LINGER_MS 5000

typedef struct st_linger_t {
    h2o_socket_t *sock;
    uv_timer_t timer;
} linger_t;

static void on_linger_timer_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void end_linger(linger_t *l)
{
    h2o_socket_read_stop(l->sock);
    l->sock->data = NULL;
    real.socket_close(l->sock);
    uv_close((uv_handle_t *)&l->timer, on_linger_timer_close);
}

static void on_linger_timeout(uv_timer_t *timer)
{
    end_linger(timer->data);
}

static void on_linger_read(h2o_socket_t *sock, const char *err)
{
    if (err != NULL)
        end_linger(sock->data);
    else
        h2o_buffer_consume(&sock->input, sock->input->size);
}

static void linger(h2o_socket_t *sock)
{
    linger_t *l = h2o_mem_alloc(sizeof(*l));
    l->sock = sock;
    sock->data = l;
    h2o_buffer_consume(&sock->input, sock->input->size);
    int fd;
    if (sock->ssl == NULL && (fd = h2o_socket_get_fd(sock)) >= 0)
        shutdown(fd, SHUT_WR);
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, on_linger_timeout, LINGER_MS, 0);
    h2o_socket_read_start(sock, on_linger_read);
}

void h2o_socket_close(h2o_socket_t *sock)
{
    pthread_once(&once, init);
    if (presizing != NULL && presizing->presize == sock)
        presizing = NULL;
    if (lingering != NULL && tdelete(sock, &lingering, compare_pointers) != NULL)
        linger(sock);
    else
        real.socket_close(sock);
}

static void on_http1_head(h2o_req_t *req, struct phr_header *headers, size_t *num_headers, size_t head)
{
    pgw_worker_t *w = worker_of(req->conn);
    size_t length;
    if (w == NULL || !http1_body(headers, *num_headers, req->conn->ctx->globalconf->max_request_entity_size, &length))
        return;
    h2o_iovec_t x_api_key = {NULL, 0}, authorization = {NULL, 0};
    for (size_t i = 0; i != *num_headers; ++i) {
        if (x_api_key.base == NULL && is_header(headers + i, H2O_STRLIT("x-api-key")))
            x_api_key = h2o_iovec_init(headers[i].value, headers[i].value_len);
        else if (authorization.base == NULL && is_header(headers + i, H2O_STRLIT("authorization")))
            authorization = h2o_iovec_init(headers[i].value, headers[i].value_len);
    }
    /* libh2o reads exactly a Content-Length; a chunked body is counted as it comes */
    if (admit(w, req, x_api_key, authorization, length, length == SIZE_MAX, NULL, head) == PGW_BODY_READ)
        return;
    *num_headers = http1_withhold(headers, *num_headers);
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock != NULL) {
        loop = &w->loop;
        insert(sock, &lingering, compare_pointers);
    }
}

int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len)
{
    pthread_once(&once, init);
    int ret = real.parse_request(buf, len, method, method_len, path, path_len, minor_version, headers, num_headers, last_len);
    if (ret > 0)
        on_http1_head(H2O_STRUCT_FROM_MEMBER(h2o_req_t, input.method.base, method), headers, num_headers, (size_t)ret);
    return ret;
}

/* ---- HTTP/2 ---- */

static void on_http2_head(h2o_req_t *req, size_t content_length)
{
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    pgw_worker_t *w = worker_of(req->conn);
    if (w == NULL || stream->state != H2O_HTTP2_STREAM_STATE_RECV_HEADERS || stream->_req_body == NULL || content_length == 0)
        return;
    /* libh2o compares content-length with the body only at its end: every HTTP/2 body is counted as it comes */
    if (admit(w, req, pgw_req_header(req, H2O_STRLIT("x-api-key")), pgw_req_header(req, H2O_STRLIT("authorization")),
              content_length, 1, stream, 0) != PGW_BODY_READ) {
        h2o_buffer_dispose(&stream->_req_body);
        return;
    }
    /* libh2o copies each DATA frame into the stream's body buffer, which starts at 8 KB and doubles (each time copying
     * what it holds): an admitted body of declared length gets its room at once, so that it is copied only the once
     * (admit() has reserved that length, under max_request_entity_size) */
    size_t max = req->conn->ctx->globalconf->max_request_entity_size;
    if (content_length != SIZE_MAX)
        h2o_buffer_reserve(&stream->_req_body, content_length < max ? content_length : max);
}

int h2o_hpack_parse_headers(h2o_req_t *req, h2o_hpack_header_table_t *header_table, const uint8_t *src, size_t len,
                            int *pseudo_header_exists_map, size_t *content_length, h2o_cache_digests_t **digests,
                            const char **err_desc)
{
    pthread_once(&once, init);
    int ret = real.parse_headers(req, header_table, src, len, pseudo_header_exists_map, content_length, digests, err_desc);
    if (ret == 0 && pseudo_header_exists_map != NULL) /* a request's headers, not trailers */
        on_http2_head(req, *content_length);
    return ret;
}

void h2o_http2_stream_reset(h2o_http2_conn_t *conn, h2o_http2_stream_t *stream)
{
    pthread_once(&once, init);
    withheld_t *m = find_withheld(&stream->req);
    if (m != NULL && !m->reset) {
        /* DATA for a stream answered early: libh2o has just queued RST_STREAM(STREAM_CLOSED) for it; take that back */
        uint8_t rst[RST_STREAM_SIZE];
        h2o_buffer_t *buf = conn->_write.buf;
        encode_rst_stream(rst, stream->stream_id, -H2O_HTTP2_ERROR_STREAM_CLOSED);
        if (buf->size >= sizeof(rst) && memcmp(buf->bytes + buf->size - sizeof(rst), rst, sizeof(rst)) == 0) {
            buf->size -= sizeof(rst);
            return;
        }
        m->reset = 1; /* any other reset (the client's RST_STREAM, a flow-control error) is libh2o's to do */
    }
    real.stream_reset(conn, stream);
}

void h2o_http2_stream_proceed(h2o_http2_conn_t *conn, h2o_http2_stream_t *stream)
{
    pthread_once(&once, init);
    withheld_t *m;
    if (stream->state == H2O_HTTP2_STREAM_STATE_END_STREAM && (m = find_withheld(&stream->req)) != NULL && !m->reset)
        queue_rst_stream(conn, stream->stream_id, 0); /* the answer is written: the client may stop sending */
    real.stream_proceed(conn, stream);
}

/* ---- set-up ---- */

int pgw_bodies_init(void)
{
    pthread_once(&once, init);
    pgw_uvread_observe(on_read);
    return dlsym(RTLD_DEFAULT, "phr_parse_request") == (void *)phr_parse_request &&
           dlsym(RTLD_DEFAULT, "h2o_hpack_parse_headers") == (void *)h2o_hpack_parse_headers &&
           dlsym(RTLD_DEFAULT, "h2o_http2_stream_reset") == (void *)h2o_http2_stream_reset &&
           dlsym(RTLD_DEFAULT, "h2o_http2_stream_proceed") == (void *)h2o_http2_stream_proceed &&
           dlsym(RTLD_DEFAULT, "h2o_socket_close") == (void *)h2o_socket_close && pgw_uvread_fix_active();
}
