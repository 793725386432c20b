/* poe-gateway: MIT licence. The libcurl attempt engine: libcurl's multi interface driven by a worker's libuv loop.
 *
 * The glue follows curl's docs/examples/multi-uv.c: curl tells us through on_socket which descriptors to watch, and
 * through on_multi_timer when to call it back; uv_poll and a uv_timer do the watching, and every wake-up goes to
 * curl_multi_socket_action, after which finished transfers are collected from curl_multi_info_read.
 *
 * The engine carries the attempts of a transfer (see attempt.h; upstream.c holds the retry policy and the timers): one
 * easy handle per transfer, added to a multi for each attempt. It serves http:// URLs (HTTP/1.1 and h2c), unix sockets,
 * and the https:// hosts the gateway's own HTTP/2 client hands over (h2conn.c).
 *
 * The request body goes to curl in one piece, so that HTTP/2 has sent all of it before a server that answers on the
 * request's head answers (start), and an answer complete by its Content-Length ends the attempt even if curl still had
 * body to send (answered): libcurl 7.88 mishandles a stream the server closes under an upload.
 *
 * No curl call is made from inside a curl callback: a transfer that lets go while curl is running (up->in_curl) leaves
 * its easy handle behind, marked; it is removed once curl has returned.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <unistd.h>
#include <h2o.h>
#include "common/log.h"
#include "upstream/upstream_curl.h"

#define MODULE_NAME "upstream"
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_CONNECTIONS_KEPT 32 /* idle connections a worker keeps open for reuse (HTTP/1.1 upstreams hold many) */
#define TLS_HOST_CONNECTIONS 4    /* connections per https:// host and worker: HTTP/2 multiplexes (see struct multi) */
#define MAX_STREAMS_PER_CONNECTION 1024
#define UPLOAD_BUFFER_MAX (2 * 1024 * 1024) /* libcurl's own cap on CURLOPT_UPLOAD_BUFFERSIZE */

/*
 * Two curl multi handles per worker, because libcurl's connection cap is one per multi for every host. https:// URLs go
 * to `tls`: HTTP/2 (by ALPN) multiplexes their requests, at most TLS_HOST_CONNECTIONS a host, as always. With a cap sized
 * for HTTP/1.1 instead, libcurl 7.88 opened 27 connections to a server allowing 100 streams on each for 128 concurrent
 * requests. http:// URLs (HTTP/1.1, and h2c, which libcurl 7.88 cannot reuse) and unix sockets go to `plain`, where
 * each request in flight takes a connection, up to gateway.upstream_connections a host.
 */
struct multi {
    CURLM *handle;
    uv_timer_t timer;
    pgw_upstream_curl_t *up;
};

struct poll_ctx {
    uv_poll_t poll;
    struct multi *multi; /* whose socket this is */
    curl_socket_t fd;
    int events; /* what poll watches now (UV_READABLE, UV_WRITABLE) */
    pgw_upstream_curl_t *up;
    h2o_linklist_t link;
};

struct st_pgw_upstream_curl_t {
    pgw_attempt_engine_t engine; /* first: the operations given to transfers */
    uv_loop_t *loop;
    struct multi tls, plain;
    CURLSH *share;
    char *ca_file;
    int in_curl;             /* > 0 while a curl function runs on this multi */
    h2o_linklist_t polls;    /* every live poll_ctx */
    struct poll_ctx **by_fd; /* the poll_ctx of each socket curl has opened and not closed, by descriptor */
    size_t by_fd_cap;
    h2o_linklist_t orphans;   /* easy handles whose transfer let go while curl ran, removed once it has returned */
    h2o_linklist_t uploading; /* easy handles whose upload buffer curl holds until their body is sent */
    h2o_linklist_t answered;  /* attempts whose answer arrived whole by its length, ended once curl has returned */
    atomic_ullong sockets;    /* sockets curl asked us to watch: the open upstream connections */
};

/* A transfer's easy handle and what goes with it, from its first attempt on curl until the transfer ends. */
struct easy {
    pgw_upstream_curl_t *up;
    pgw_attempt_t *a;    /* NULL once the transfer has let go (an orphan, on up->orphans) */
    struct multi *multi; /* up->tls or up->plain, by the URL */
    CURL *easy;
    int added;                    /* easy is in the multi */
    size_t body_off;              /* how much of the body curl has read in this attempt */
    int64_t content_length;       /* the final head's Content-Length, or -1 */
    int64_t received;             /* body bytes of this attempt taken by on_write */
    int whole;                    /* they are the whole answer */
    h2o_linklist_t upload_link;   /* in up->uploading */
    h2o_linklist_t answered_link; /* in up->answered until ended */
    h2o_linklist_t orphan_link;   /* in up->orphans */
    struct curl_slist *headers;   /* the request headers curl points to, taken from the transfer by an orphan */
    char errbuf[CURL_ERROR_SIZE];
};

static void check_info(pgw_upstream_curl_t *up);

/* Failures before the answer's head, where nothing has reached the client: Poe could not be reached, or its connection
 * (or the stream on it) ended first. A request Poe had begun may be tried twice; the client's own SDK retries a 502 the
 * same way, and the gateway's retry is sooner and keeps the answer. */
static int result_is_retryable(CURLcode result)
{
    switch (result) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: /* "stream N was not closed cleanly": reset by Poe */
    case CURLE_PARTIAL_FILE: /* "... before end of the underlying stream": the connection ended under the stream */
        return 1;
    default:
        return 0;
    }
}

/*
 * Whether the attempt failed without Poe having processed the request, so that sending it again on a new connection is
 * safe and not a retry: HTTP/2 says so when the server refuses the stream (RST_STREAM(REFUSED_STREAM)) or announces a
 * GOAWAY whose last stream id is below it (nghttp2 then closes the stream as refused). libcurl 7.88 itself sends such a
 * request again on a new connection, without telling us (on_prereq), but five times in a row at most: then it fails
 * the transfer with "Connection died, tried 5 times before giving up". A server that rotates its connections every few
 * requests, or refuses what a first flight sends over its limit, uses that up under load. The message is the one the
 * error buffer keeps only if no try logged an error first (curl keeps the first), so each try ended before any byte of
 * answer with its stream refused, or with its reused connection closing behind a GOAWAY, or (HTTP/1.1) on a pooled
 * connection the server had closed while it was idle, a request it had not read either. The transport errors libcurl
 * also replays (a reset, a TLS error) log their own message first and do not match. Were libcurl to word it otherwise,
 * the attempt would just be retried on the budget, as before.
 */
static int never_processed(struct easy *x)
{
    static const char gave_up[] = "Connection died, tried ";
    return strncmp(x->errbuf, gave_up, sizeof(gave_up) - 1) == 0;
}

/* ---- the multi <-> uv glue ---- */

static void on_poll_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct poll_ctx *ctx = handle->data;
    pgw_upstream_curl_t *up = ctx->up;
    int flags = 0, running;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
        ctx->events = 0; /* libuv has stopped the handle: the next interest curl tells starts it again */
    }
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    ++up->in_curl;
    curl_multi_socket_action(ctx->multi->handle, ctx->fd, flags, &running);
    --up->in_curl;
    check_info(up);
}

/*
 * A socket's poll_ctx lives as long as the socket, not as long as curl watches it: libcurl 7.88 stops watching a
 * connection when its transfer ends (CURL_POLL_REMOVE) and starts again when the next one takes it from the pool, and a
 * uv_poll_t made anew each time cost five more system calls a request (libuv's checks on a new socket, and the
 * descriptor taken out of epoll and put back). So REMOVE only stops the poll, the next interest on that descriptor finds
 * it again (by_fd), and it is closed with the socket (on_closesocket). A socket curl closes without its close callback
 * (the threaded resolver's own pair) leaves a stopped poll_ctx under its number, which is taken up again, rightly, by
 * the next socket of curl's that gets that number.
 */
static struct poll_ctx *find_poll(pgw_upstream_curl_t *up, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < up->by_fd_cap ? up->by_fd[fd] : NULL;
}

static void set_poll(pgw_upstream_curl_t *up, curl_socket_t fd, struct poll_ctx *ctx)
{
    if ((size_t)fd >= up->by_fd_cap) {
        size_t cap = up->by_fd_cap != 0 ? up->by_fd_cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        up->by_fd = h2o_mem_realloc(up->by_fd, cap * sizeof(*up->by_fd));
        memset(up->by_fd + up->by_fd_cap, 0, (cap - up->by_fd_cap) * sizeof(*up->by_fd));
        up->by_fd_cap = cap;
    }
    up->by_fd[fd] = ctx;
}

static int on_closesocket(void *clientp, curl_socket_t fd)
{
    pgw_upstream_curl_t *up = clientp;
    struct poll_ctx *ctx = find_poll(up, fd);
    if (ctx != NULL) {
        set_poll(up, fd, NULL);
        h2o_linklist_unlink(&ctx->link);
        uv_close((uv_handle_t *)&ctx->poll, on_poll_close); /* before the descriptor goes: libuv takes it out of epoll */
    }
    return close(fd);
}

static int on_socket(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
    struct multi *multi = userp;
    pgw_upstream_curl_t *up = multi->up;
    struct poll_ctx *ctx = socketp;
    int events = 0;

    switch (action) {
    case CURL_POLL_IN:
    case CURL_POLL_OUT:
    case CURL_POLL_INOUT:
        if (ctx == NULL) {
            if ((ctx = find_poll(up, s)) == NULL) {
                ctx = h2o_mem_alloc(sizeof(*ctx));
                memset(ctx, 0, sizeof(*ctx));
                ctx->fd = s;
                ctx->up = up;
                ctx->multi = multi;
                uv_poll_init_socket(up->loop, &ctx->poll, s);
                ctx->poll.data = ctx;
                h2o_linklist_insert(&up->polls, &ctx->link);
                set_poll(up, s, ctx);
            }
            ctx->multi = multi; /* a descriptor number once the other multi's, closed without its callback (see find_poll) */
            curl_multi_assign(multi->handle, s, ctx);
            atomic_fetch_add_explicit(&up->sockets, 1, memory_order_relaxed);
        }
        if (action != CURL_POLL_OUT)
            events |= UV_READABLE;
        if (action != CURL_POLL_IN)
            events |= UV_WRITABLE;
        /* libcurl 7.88 tells the same interest again after most of its steps; libuv 1.44 takes uv_poll_start as a stop
         * and a start, and asks the kernel again (epoll_ctl ADD, refused EEXIST, then MOD) even when nothing changed */
        if (events != ctx->events) {
            uv_poll_start(&ctx->poll, events, on_poll);
            ctx->events = events;
        }
        break;
    case CURL_POLL_REMOVE:
        if (ctx != NULL) {
            uv_poll_stop(&ctx->poll); /* kept for the socket's next transfer (see find_poll) */
            ctx->events = 0;
            curl_multi_assign(multi->handle, s, NULL);
            atomic_fetch_sub_explicit(&up->sockets, 1, memory_order_relaxed);
        }
        break;
    }
    return 0;
}

static void on_multi_timeout(uv_timer_t *timer)
{
    struct multi *multi = timer->data;
    pgw_upstream_curl_t *up = multi->up;
    int running;
    ++up->in_curl;
    curl_multi_socket_action(multi->handle, CURL_SOCKET_TIMEOUT, 0, &running);
    --up->in_curl;
    check_info(up);
}

static int on_multi_timer(CURLM *handle, long timeout_ms, void *userp)
{
    struct multi *multi = userp;
    (void)handle;
    if (timeout_ms < 0)
        uv_timer_stop(&multi->timer);
    else /* 0 means "now"; curl must not be called from inside its own callback, and a 0 ms uv timer runs from the loop
          * once this callback has returned (not 1 ms: libuv counts whole milliseconds from the start of the loop turn, so
          * that was up to 2 ms per curl step, and most of the latency the gateway added) */
        uv_timer_start(&multi->timer, on_multi_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- attempts ---- */

/*
 * Takes the easy handle out of the multi. `premature` means the response is not complete: Poe must stop sending it. For
 * that libcurl 7.88 queues an RST_STREAM, but it holds frames under 1 KiB in a buffer flushed only by the connection's
 * next send, and a connection left with no transfer is not even read: the reset would reach Poe with the next request,
 * if ever, while Poe goes on generating (and billing) the answer. Forbidding reuse makes libcurl close the connection
 * when this was its last transfer, which ends the stream at once; when other transfers share the connection it stays
 * open, and their traffic flushes the reset.
 */
static void detach_easy(struct easy *x, int premature)
{
    if (h2o_linklist_is_linked(&x->upload_link))
        h2o_linklist_unlink(&x->upload_link); /* curl frees the buffer with the request */
    if (h2o_linklist_is_linked(&x->answered_link))
        h2o_linklist_unlink(&x->answered_link);
    if (x->added) {
        if (premature)
            curl_easy_setopt(x->easy, CURLOPT_FORBID_REUSE, 1L);
        curl_multi_remove_handle(x->multi->handle, x->easy);
        x->added = 0;
    }
}

static void destroy_easy(struct easy *x)
{
    detach_easy(x, 1);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    free(x);
}

/* Feeds the body to curl from its parts (no copy of the whole), into curl's upload buffer. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct easy *x = userp;
    if (x->a == NULL)
        return CURL_READFUNC_ABORT;
    size_t room = size * nitems, n = 0, skip = x->body_off;
    for (size_t i = 0; i != sizeof(x->a->body) / sizeof(x->a->body[0]) && n != room; ++i) {
        if (skip >= x->a->body[i].len) {
            skip -= x->a->body[i].len;
            continue;
        }
        size_t take = x->a->body[i].len - skip < room - n ? x->a->body[i].len - skip : room - n;
        memcpy(buf + n, x->a->body[i].base + skip, take);
        n += take;
        skip = 0;
    }
    x->body_off += n;
    return n;
}

static int on_seek(void *userp, curl_off_t offset, int origin)
{
    struct easy *x = userp;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    x->body_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/* A socket this transfer opened, before it connects (see on_engaged in upstream.c: connecting and the TLS handshake
 * count against `timeout`). */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    struct easy *x = clientp;
    (void)fd;
    if (purpose == CURLSOCKTYPE_IPCXN && x->a != NULL)
        x->a->cb->engaged(x->a);
    return CURL_SOCKOPT_OK;
}

/* Before each request curl sends, including those it replays by itself: libcurl 7.88 sends a stream the server refused
 * (RST_STREAM(REFUSED_STREAM), or above a GOAWAY's last stream id) again on a new connection without telling us, and it
 * rewinds the body only if it had sent some of it; what it had read through on_read but not sent yet is lost, and the
 * replay would carry the body without its start. So every request reads the body from its start (into an upload
 * buffer curl allocates again, to be freed again: free_upload_buffers). */
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port, int conn_local_port)
{
    struct easy *x = userp;
    (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
    if (x->a == NULL)
        return CURL_PREREQFUNC_ABORT;
    x->body_off = 0;
    x->a->cb->engaged(x->a);
    if (x->a->body_len != 0 && !h2o_linklist_is_linked(&x->upload_link))
        h2o_linklist_insert(&x->up->uploading, &x->upload_link);
    return CURL_PREREQFUNC_OK;
}

static long upload_buffer_size(size_t body_len)
{
    return (long)(body_len < UPLOAD_BUFFER_MAX ? body_len : UPLOAD_BUFFER_MAX); /* curl raises it to 16 KB at least */
}

/* Frees curl's upload buffer (as large as the body, see create_easy) of each transfer whose body is all sent, so that a
 * long answer does not hold it: setting the size again makes libcurl 7.88 free the buffer, to allocate it anew only if
 * it reads the body again (a replay, which puts the transfer back on the list). Only while curl is not running. */
static void free_upload_buffers(pgw_upstream_curl_t *up)
{
    h2o_linklist_t *node = up->uploading.next;
    while (node != &up->uploading) {
        struct easy *x = H2O_STRUCT_FROM_MEMBER(struct easy, upload_link, node);
        curl_off_t sent = 0;
        node = node->next;
        if (curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK && sent == (curl_off_t)x->a->body_len) {
            h2o_linklist_unlink(&x->upload_link);
            curl_easy_setopt(x->easy, CURLOPT_UPLOAD_BUFFERSIZE, upload_buffer_size(x->a->body_len));
        }
    }
}

/*
 * The answer has arrived whole by its Content-Length. libcurl 7.88 then ends the transfer at once, unless it still has
 * body to send: a server may answer before it has read the whole body (nginx does, for an answer that needs none) and
 * then reset the rest of the upload with RST_STREAM(NO_ERROR), or stop reading it. HTTP/2 has the client take the
 * complete answer then; libcurl 7.88 does not: the transfer waits for a send that the closed stream never takes (until
 * stream_timeout), or the next send fails it with CURLE_HTTP2_STREAM, which libcurl reports only as "stream N closed" in
 * its verbose log (the error buffer stays empty: "Stream error in the HTTP/2 framing layer"). libcurl 8.3 discards the
 * rest of the body instead. So the attempt ends here as curl would have ended it: once curl has returned (check_info),
 * or in on_done if curl fails it first. What libcurl 7.88 leaves out of reach: an answer without a length (a stream)
 * cannot be told complete, and keeps curl's verdict; and answer bytes it reads together with the reset it drops, head
 * included, so such an attempt fails as if nothing had come (and is retried, on the budget).
 */
static void answered(struct easy *x)
{
    if (x->whole)
        return;
    x->whole = 1;
    h2o_linklist_insert(&x->up->answered, &x->answered_link);
}

/* End of a header block. Returns 0 to go on, -1 to abort the attempt. */
static int on_header_block_end(struct easy *x)
{
    long status = 0;
    curl_off_t cl = -1;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200) {
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        x->content_length = cl;
        if (cl == 0)
            answered(x);
    }
    return x->a->cb->head(x->a, (int)status, status >= 200 ? (int64_t)cl : -1);
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    struct easy *x = userdata;
    size_t len = size * nitems;
    const char *p = buffer, *end = buffer + len;

    if (x->a == NULL)
        return 0;
    while (end != p && (end[-1] == '\n' || end[-1] == '\r'))
        --end;
    if (end == p)
        return on_header_block_end(x) == 0 ? len : 0;
    if (end - p >= 5 && memcmp(p, "HTTP/", 5) == 0) /* status line: a new header block begins */
        return x->a->cb->head(x->a, 0, -1) == 0 ? len : 0;
    const char *colon = memchr(p, ':', end - p);
    if (colon == NULL)
        return len;
    const char *v = colon + 1;
    while (v != end && (*v == ' ' || *v == '\t'))
        ++v;
    x->a->cb->header(x->a, p, colon - p, v, end - v);
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct easy *x = userdata;
    size_t len = size * nmemb;

    if (x->a == NULL)
        return 0;
    switch (x->a->cb->body(x->a, ptr, len)) {
    case 0:
        break;
    case 1:
        return CURL_WRITEFUNC_PAUSE;
    default:
        return 0;
    }
    x->received += (int64_t)len;
    if (x->content_length >= 0 && x->received >= x->content_length)
        answered(x);
    return len;
}

static void on_done(struct easy *x, CURLcode result)
{
    char msg[CURL_ERROR_SIZE + 64];
    pgw_attempt_t *a = x->a;

    if (a == NULL) /* an orphan: destroyed from its list */
        return;
    detach_easy(x, result != CURLE_OK && !x->whole);
    if (x->whole || result == CURLE_OK) { /* whole: what failed was sending the rest of the body */
        a->cb->done(a, PGW_ATTEMPT_OK, NULL);
        return;
    }
    snprintf(msg, sizeof(msg), "%s", x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(result));
    a->cb->done(a,
                never_processed(x)            ? PGW_ATTEMPT_NEVER_PROCESSED
                : result_is_retryable(result) ? PGW_ATTEMPT_RETRYABLE
                                              : PGW_ATTEMPT_FAILED,
                msg);
}

static void check_info(pgw_upstream_curl_t *up)
{
    CURLMsg *msg;
    int pending;
    if (up->in_curl != 0)
        return;
    while (!h2o_linklist_is_empty(&up->orphans)) {
        struct easy *x = H2O_STRUCT_FROM_MEMBER(struct easy, orphan_link, up->orphans.next);
        h2o_linklist_unlink(&x->orphan_link);
        destroy_easy(x);
    }
    for (struct multi *m = &up->tls; m != NULL; m = m == &up->tls ? &up->plain : NULL) {
        while ((msg = curl_multi_info_read(m->handle, &pending)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct easy *x;
            CURLcode result = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            on_done(x, result);
        }
    }
    while (!h2o_linklist_is_empty(&up->answered)) { /* whole answers curl holds on to (see answered) */
        struct easy *x = H2O_STRUCT_FROM_MEMBER(struct easy, answered_link, up->answered.next);
        h2o_linklist_unlink(&x->answered_link);
        on_done(x, CURLE_OK);
    }
    free_upload_buffers(up);
}

static struct easy *create_easy(pgw_upstream_curl_t *up, pgw_attempt_t *a)
{
    struct easy *x = h2o_mem_alloc(sizeof(*x));
    memset(x, 0, sizeof(*x));
    x->up = up;
    x->a = a;
    int tls = strncasecmp(a->url, "https://", 8) == 0 && a->unix_socket == NULL;
    x->multi = tls ? &up->tls : &up->plain;

    CURL *e = x->easy = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, a->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_SHARE, up->share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Waiting for a connection in progress to say whether it multiplexes pays only where it may: over TLS, where ALPN
     * tells at the handshake. On an http:// URL (HTTP/1.1) libcurl 7.88 learns it only when that first transfer ends, so
     * every request that arrived meanwhile waited for the whole of the first answer (a stream: minutes). */
    if (tls)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, x);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, a->h2c ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_2TLS);
    if (a->h2c) {
        /* libcurl 7.88 (Debian 12) cannot send a second stream on a prior-knowledge connection: the request after the
         * first one on it fails with a framing error. Until a newer libcurl, each h2c request gets its own connection. */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (a->unix_socket != NULL) {
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, a->unix_socket);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    }
    if (up->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, up->ca_file);
    if (!a->ssl_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(a->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        /* The body through a read callback, so that it may come in parts, into an upload buffer of curl's as large as
         * the body: curl hands all of it to HTTP/2 in one send, and the server has the request's END_STREAM as soon as
         * the flow-control windows allow (nginx opens 64 KB a stream). Through a 16 KB buffer it took a turn of the loop
         * per 16 KB, and a server that answers on the request's head (nginx) answered in between, then reset the upload
         * it had not seen the end of with RST_STREAM(NO_ERROR), which libcurl 7.88 mishandles (see answered): with 64
         * concurrent 50 KB requests to nginx, one in five lost its answer and was sent again (a request nginx had
         * answered), some until max_retries ran out and the client got a 502; now about none. A body larger than the
         * server's window cannot be sent before such an answer at all. The buffer is freed once the body is sent
         * (free_upload_buffers), so a long answer does not hold it. */
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, upload_buffer_size(a->body_len));
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->body_len);
    } else if (strcmp(a->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, a->method);
    }
    return x;
}

static void engine_start(pgw_attempt_t *a)
{
    pgw_upstream_curl_t *up = (pgw_upstream_curl_t *)a->engine;
    struct easy *x = a->engine_data;
    if (x == NULL)
        a->engine_data = x = create_easy(up, a);
    x->body_off = 0; /* a retry sends the body again from its start */
    x->errbuf[0] = '\0';
    x->content_length = -1;
    x->received = 0;
    x->whole = 0;
    x->added = 1;
    curl_multi_add_handle(x->multi->handle, x->easy);
}

static void engine_stop(pgw_attempt_t *a, int premature)
{
    struct easy *x = a->engine_data;
    if (x != NULL && x->up->in_curl == 0) /* the transfer stops attempts from its timer or after done, never from a callback */
        detach_easy(x, premature);
}

static void engine_resume(pgw_attempt_t *a)
{
    struct easy *x = a->engine_data;
    if (x == NULL)
        return;
    pgw_upstream_curl_t *up = x->up;
    ++up->in_curl;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
    --up->in_curl;
    check_info(up);
}

static int engine_body_sent(pgw_attempt_t *a)
{
    struct easy *x = a->engine_data;
    return x != NULL && x->body_off == a->body_len;
}

static void engine_release(pgw_attempt_t *a)
{
    struct easy *x = a->engine_data;
    if (x == NULL)
        return;
    a->engine_data = NULL;
    if (x->up->in_curl == 0) {
        destroy_easy(x);
    } else {
        /* curl is running (perhaps this very transfer's callback): the handle's callbacks now abort it, and it is
         * removed as soon as curl has returned; it keeps the header list curl points to until then */
        x->a = NULL;
        x->headers = a->headers;
        a->headers = NULL;
        if (h2o_linklist_is_linked(&x->upload_link))
            h2o_linklist_unlink(&x->upload_link);
        if (h2o_linklist_is_linked(&x->answered_link))
            h2o_linklist_unlink(&x->answered_link);
        h2o_linklist_insert(&x->up->orphans, &x->orphan_link);
    }
}

static void init_multi(pgw_upstream_curl_t *up, struct multi *multi, unsigned max_host_connections)
{
    multi->up = up;
    uv_timer_init(up->loop, &multi->timer);
    multi->timer.data = multi;
    multi->handle = curl_multi_init();
    curl_multi_setopt(multi->handle, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi->handle, CURLMOPT_SOCKETDATA, multi);
    curl_multi_setopt(multi->handle, CURLMOPT_TIMERFUNCTION, on_multi_timer);
    curl_multi_setopt(multi->handle, CURLMOPT_TIMERDATA, multi);
    curl_multi_setopt(multi->handle, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    /* Connections per upstream host (see struct multi); past the cap a request waits in curl, and its `timeout` starts
     * only when it leaves (on_engaged in upstream.c). Idle connections kept for reuse are bounded apart
     * (CURLMOPT_MAXCONNECTS: past it, the oldest idle one is closed). */
    curl_multi_setopt(multi->handle, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_connections);
    curl_multi_setopt(multi->handle, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS_KEPT);
    /* The client-side cap on streams per connection. libcurl 7.88 itself opens at most 100 (HTTP/2's recommended
     * minimum) before the server's SETTINGS arrive and then what the server allows; this only stops a server that allows
     * thousands from getting them all. Past the limit a worker opens another connection (up to the cap above) or
     * queues. */
    curl_multi_setopt(multi->handle, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)MAX_STREAMS_PER_CONNECTION);
}

pgw_upstream_curl_t *pgw_upstream_curl_create(uv_loop_t *loop, const char *ca_file, unsigned max_host_connections)
{
    pgw_upstream_curl_t *up = h2o_mem_alloc(sizeof(*up));
    memset(up, 0, sizeof(*up));
    up->engine = (pgw_attempt_engine_t){engine_start, engine_stop, engine_resume, engine_body_sent, engine_release};
    up->loop = loop;
    h2o_linklist_init_anchor(&up->polls);
    h2o_linklist_init_anchor(&up->orphans);
    h2o_linklist_init_anchor(&up->uploading);
    h2o_linklist_init_anchor(&up->answered);
    up->ca_file = ca_file != NULL ? strdup(ca_file) : NULL;
    init_multi(up, &up->tls, TLS_HOST_CONNECTIONS);
    init_multi(up, &up->plain, max_host_connections);

    /* one worker, one thread: the share needs no locks */
    up->share = curl_share_init();
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return up;
}

const pgw_attempt_engine_t *pgw_upstream_curl_engine(pgw_upstream_curl_t *c)
{
    return &c->engine;
}

unsigned long long pgw_upstream_curl_sockets(pgw_upstream_curl_t *c)
{
    return atomic_load_explicit(&c->sockets, memory_order_relaxed);
}
