/* poe-gateway: MIT licence. HTTP client to Poe: libcurl's multi interface driven by a worker's libuv loop.
 *
 * The glue follows curl's docs/examples/multi-uv.c: curl tells us through on_socket which descriptors to watch, and
 * through on_multi_timer when to call it back; uv_poll and a uv_timer do the watching, and every wake-up goes to
 * curl_multi_socket_action, after which finished transfers are collected from curl_multi_info_read.
 *
 * A transfer is one logical request across its attempts. An attempt whose response is retryable (connect failure, or
 * status 429/500/502/503/529) is swallowed whole and the request is sent again after a back-off, as long as retries
 * remain; one that Poe did not process (its HTTP/2 stream refused, see never_processed) is sent again without spending
 * them, a few times at most. The callbacks only ever see the final attempt, so nothing reaches the client from an
 * attempt that is retried. Each transfer owns one uv_timer that serves, in turn, as the first-byte deadline, the silence
 * watchdog and the back-off delay.
 *
 * The request body goes to curl in one piece, so that HTTP/2 has sent all of it before a server that answers on the
 * request's head answers (pgw_upstream_start), and an answer complete by its Content-Length ends the transfer even if
 * curl still had body to send (answered): libcurl 7.88 mishandles a stream the server closes under an upload.
 *
 * No curl call is made from inside a curl callback: a cancel that arrives while curl is running (up->in_curl) only
 * marks the transfer; it is removed once curl has returned.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <h2o.h>
#include "config/config.h"
#include "common/log.h"
#include "upstream/upstream.h"

#define MODULE_NAME "upstream"
#define CONNECT_TIMEOUT_MS 10000
#define IDLE_CONNECTIONS_KEPT 32 /* idle connections a worker keeps open for reuse (HTTP/1.1 upstreams hold many) */
#define TLS_HOST_CONNECTIONS 4    /* connections per https:// host and worker: HTTP/2 multiplexes (see struct multi) */
#define MAX_STREAMS_PER_CONNECTION 1024
#define RETRY_AFTER_CAP_MS 30000
#define BACKOFF_BASE_MS 250
#define MAX_REPLAYS 4 /* attempts replayed without spending max_retries, per transfer (see never_processed) */
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
    pgw_upstream_t *up;
};

struct poll_ctx {
    uv_poll_t poll;
    struct multi *multi; /* whose socket this is */
    curl_socket_t fd;
    int events; /* what poll watches now (UV_READABLE, UV_WRITABLE) */
    pgw_upstream_t *up;
    h2o_linklist_t link;
};

struct st_pgw_upstream_t {
    uv_loop_t *loop;
    unsigned max_host_connections; /* gateway.upstream_connections */
    struct multi tls, plain;
    CURLSH *share;
    char *ca_file;
    int in_curl;               /* > 0 while a curl function runs on this multi */
    h2o_linklist_t transfers;  /* every live transfer */
    h2o_linklist_t polls;      /* every live poll_ctx */
    struct poll_ctx **by_fd;   /* the poll_ctx of each socket curl has opened and not closed, by descriptor */
    size_t by_fd_cap;
    h2o_linklist_t cancelled;  /* transfers cancelled while curl ran, removed once it has returned */
    h2o_linklist_t uploading;  /* transfers whose upload buffer curl holds until their body is sent */
    h2o_linklist_t answered;   /* transfers whose answer arrived whole by its length, ended once curl has returned */
    atomic_ullong retries;     /* attempts retried (read by /metrics from another thread) */
    atomic_ullong sockets;     /* sockets curl asked us to watch: the open upstream connections */
};

enum transfer_state {
    ST_WAITING_HEAD, /* attempt in flight, no final head yet */
    ST_STREAMING,    /* final head delivered; body flows to the callbacks */
    ST_BACKOFF,      /* between attempts */
};

struct st_pgw_upstream_transfer_t {
    pgw_upstream_t *up;
    struct multi *multi; /* up->tls or up->plain, by the URL */
    h2o_linklist_t link;
    CURL *easy;
    int added;   /* easy is in the multi */
    int engaged; /* this attempt has left curl's queue: it opened a connection or sent its request (see on_engaged) */
    char *url;
    h2o_iovec_t body[3];        /* the request body, in parts read in order */
    size_t body_off;            /* how much of it curl has read in this attempt */
    size_t body_len;            /* the parts' total */
    h2o_linklist_t upload_link; /* in up->uploading */
    struct curl_slist *headers;
    double timeout, stream_timeout;
    int max_retries;
    const pgw_upstream_callbacks_t *cb;
    void *data;
    uv_timer_t timer;
    enum transfer_state state;
    int attempts;
    int replays;       /* attempts that did not spend max_retries (see never_processed) */
    int discard;       /* this attempt will be retried: swallow its response */
    long retry_after_ms;
    int cancelled;
    int paused;
    uint64_t last_activity;       /* uv_now of the last byte (or resume) */
    curl_off_t content_length;    /* the final head's Content-Length, or -1 */
    curl_off_t received;          /* body bytes of this attempt taken by on_write */
    int whole;                    /* they are the whole answer */
    h2o_linklist_t answered_link; /* in up->answered until ended */
    h2o_buffer_t *hdrbuf;         /* "name\0value\0" pairs of the current attempt's final header block */
    char errbuf[CURL_ERROR_SIZE];
};

static void check_info(pgw_upstream_t *up);

/* ---- retry policy ---- */

long pgw_upstream_parse_retry_after(h2o_iovec_t value, time_t now)
{
    char buf[64];
    if (value.base == NULL || value.len == 0 || value.len >= sizeof(buf))
        return -1;
    memcpy(buf, value.base, value.len);
    buf[value.len] = '\0';
    char *end;
    double secs = strtod(buf, &end);
    if (end != buf && *end == '\0') {
        if (!(secs >= 0)) /* negative, or NaN */
            return -1;
        return secs > 86400 ? 86400L * 1000 : (long)(secs * 1000); /* a day at most (callers cap it lower still) */
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm) == NULL)
        return -1;
    time_t at = timegm(&tm);
    return at > now ? (long)(at - now) * 1000 : 0;
}

long pgw_upstream_backoff_ms(int attempt)
{
    long base = BACKOFF_BASE_MS;
    for (int i = 1; i < attempt && base < RETRY_AFTER_CAP_MS; ++i)
        base *= 2;
    if (base > RETRY_AFTER_CAP_MS)
        base = RETRY_AFTER_CAP_MS;
    long jitter = base / 4;
    return base - jitter + (long)(random() % (2 * jitter + 1));
}

static int status_is_retryable(int status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 529;
}

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
static int never_processed(pgw_upstream_transfer_t *t)
{
    static const char gave_up[] = "Connection died, tried ";
    return strncmp(t->errbuf, gave_up, sizeof(gave_up) - 1) == 0;
}

static int retries_left(pgw_upstream_transfer_t *t)
{
    return t->attempts - t->replays <= t->max_retries;
}

/* ---- the multi <-> uv glue ---- */

static void on_poll_close(uv_handle_t *handle)
{
    free(handle->data);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct poll_ctx *ctx = handle->data;
    pgw_upstream_t *up = ctx->up;
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
static struct poll_ctx *find_poll(pgw_upstream_t *up, curl_socket_t fd)
{
    return fd >= 0 && (size_t)fd < up->by_fd_cap ? up->by_fd[fd] : NULL;
}

static void set_poll(pgw_upstream_t *up, curl_socket_t fd, struct poll_ctx *ctx)
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
    pgw_upstream_t *up = clientp;
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
    pgw_upstream_t *up = multi->up;
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
    pgw_upstream_t *up = multi->up;
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

/* ---- transfers ---- */

static void on_transfer_timer_close(uv_handle_t *handle)
{
    pgw_upstream_transfer_t *t = handle->data;
    free(t);
}

/*
 * Takes the easy handle out of the multi. `premature` means the response is not complete: Poe must stop sending it. For
 * that libcurl 7.88 queues an RST_STREAM, but it holds frames under 1 KiB in a buffer flushed only by the connection's
 * next send, and a connection left with no transfer is not even read: the reset would reach Poe with the next request,
 * if ever, while Poe goes on generating (and billing) the answer. Forbidding reuse makes libcurl close the connection
 * when this was its last transfer, which ends the stream at once; when other transfers share the connection it stays
 * open, and their traffic flushes the reset.
 */
static void detach_easy(pgw_upstream_transfer_t *t, int premature)
{
    if (h2o_linklist_is_linked(&t->upload_link))
        h2o_linklist_unlink(&t->upload_link); /* curl frees the buffer with the request */
    if (h2o_linklist_is_linked(&t->answered_link))
        h2o_linklist_unlink(&t->answered_link);
    if (t->added) {
        if (premature)
            curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
        curl_multi_remove_handle(t->multi->handle, t->easy);
        t->added = 0;
    }
}

/* Frees everything; the struct itself goes in the timer's close callback. */
static void destroy_transfer(pgw_upstream_transfer_t *t)
{
    detach_easy(t, 1);
    if (t->easy != NULL)
        curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    free(t->url);
    h2o_buffer_dispose(&t->hdrbuf);
    h2o_linklist_unlink(&t->link);
    uv_close((uv_handle_t *)&t->timer, on_transfer_timer_close);
}

static void complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    uv_timer_stop(&t->timer);
    detach_easy(t, err != PGW_UPSTREAM_OK);
    if (!t->cancelled)
        t->cb->on_complete(t, err, errstr);
    destroy_transfer(t);
}

static void on_transfer_timer(uv_timer_t *timer);

static void arm_timer(pgw_upstream_transfer_t *t, uint64_t ms)
{
    uv_timer_start(&t->timer, on_transfer_timer, ms == 0 ? 1 : ms, 0);
}

/* Feeds the body to curl from its parts (no copy of the whole), into curl's upload buffer. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    pgw_upstream_transfer_t *t = userp;
    size_t room = size * nitems, n = 0, skip = t->body_off;
    for (size_t i = 0; i != sizeof(t->body) / sizeof(t->body[0]) && n != room; ++i) {
        if (skip >= t->body[i].len) {
            skip -= t->body[i].len;
            continue;
        }
        size_t take = t->body[i].len - skip < room - n ? t->body[i].len - skip : room - n;
        memcpy(buf + n, t->body[i].base + skip, take);
        n += take;
        skip = 0;
    }
    t->body_off += n;
    return n;
}

static int on_seek(void *userp, curl_off_t offset, int origin)
{
    pgw_upstream_transfer_t *t = userp;
    if (origin != SEEK_SET || offset < 0)
        return CURL_SEEKFUNC_CANTSEEK;
    t->body_off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

/*
 * The head deadline (`timeout`) counts from when the attempt leaves curl's queue. Past the connection cap
 * (gateway.upstream_connections), or while it waits for another transfer's connection to learn whether it multiplexes
 * (CURLOPT_PIPEWAIT), a transfer waits in curl without a connection: that wait is the gateway's, not the upstream's,
 * and must not end in a 504 for a request the upstream never saw. So the deadline is armed anew, whole, the first time
 * the attempt opens a connection of its own (on_sockopt: connecting and the TLS handshake count, as before) or, on a
 * connection it reuses, sends its request (on_prereq); until then the timer only re-arms itself (on_transfer_timer).
 * A queue that does not move is bounded by what holds the connections: their own deadlines and the client's patience.
 */
static void on_engaged(pgw_upstream_transfer_t *t)
{
    if (t->engaged || t->state != ST_WAITING_HEAD)
        return;
    t->engaged = 1;
    arm_timer(t, (uint64_t)(t->timeout * 1000));
}

/* A socket this transfer opened, before it connects. */
static int on_sockopt(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    (void)fd;
    if (purpose == CURLSOCKTYPE_IPCXN)
        on_engaged(clientp);
    return CURL_SOCKOPT_OK;
}

/* Before each request curl sends, including those it replays by itself: libcurl 7.88 sends a stream the server refused
 * (RST_STREAM(REFUSED_STREAM), or above a GOAWAY's last stream id) again on a new connection without telling us, and it
 * rewinds the body only if it had sent some of it; what it had read through on_read but not sent yet is lost, and the
 * replay would carry the body without its start. So every request reads the body from its start (into an upload
 * buffer curl allocates again, to be freed again: free_upload_buffers). */
static int on_prereq(void *userp, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port, int conn_local_port)
{
    pgw_upstream_transfer_t *t = userp;
    (void)conn_primary_ip, (void)conn_local_ip, (void)conn_primary_port, (void)conn_local_port;
    t->body_off = 0;
    on_engaged(t);
    if (t->body_len != 0 && !h2o_linklist_is_linked(&t->upload_link))
        h2o_linklist_insert(&t->up->uploading, &t->upload_link);
    return CURL_PREREQFUNC_OK;
}

static long upload_buffer_size(pgw_upstream_transfer_t *t)
{
    return (long)(t->body_len < UPLOAD_BUFFER_MAX ? t->body_len : UPLOAD_BUFFER_MAX); /* curl raises it to 16 KB at least */
}

/* Frees curl's upload buffer (as large as the body, see pgw_upstream_start) of each transfer whose body is all sent, so
 * that a long answer does not hold it: setting the size again makes libcurl 7.88 free the buffer, to allocate it anew
 * only if it reads the body again (a replay, which puts the transfer back on the list). Only while curl is not running. */
static void free_upload_buffers(pgw_upstream_t *up)
{
    h2o_linklist_t *node = up->uploading.next;
    while (node != &up->uploading) {
        pgw_upstream_transfer_t *t = H2O_STRUCT_FROM_MEMBER(pgw_upstream_transfer_t, upload_link, node);
        curl_off_t sent = 0;
        node = node->next;
        if (curl_easy_getinfo(t->easy, CURLINFO_SIZE_UPLOAD_T, &sent) == CURLE_OK && sent == (curl_off_t)t->body_len) {
            h2o_linklist_unlink(&t->upload_link);
            curl_easy_setopt(t->easy, CURLOPT_UPLOAD_BUFFERSIZE, upload_buffer_size(t));
        }
    }
}

static void start_attempt(pgw_upstream_transfer_t *t)
{
    t->body_off = 0; /* a retry sends the body again from its start */
    ++t->attempts;
    t->state = ST_WAITING_HEAD;
    t->discard = 0;
    t->retry_after_ms = -1;
    t->errbuf[0] = '\0';
    t->hdrbuf->size = 0;
    t->content_length = -1;
    t->received = 0;
    t->whole = 0;
    t->engaged = 0;
    t->last_activity = uv_now(t->up->loop);
    arm_timer(t, (uint64_t)(t->timeout * 1000));
    t->added = 1;
    curl_multi_add_handle(t->multi->handle, t->easy);
}

/* `broken`: the attempt failed at the transport level; its connection is not to be reused. `replay`: Poe did not process
 * the request (never_processed), so the attempt does not count against max_retries. */
static void retry_later(pgw_upstream_transfer_t *t, const char *why, int broken, int replay)
{
    detach_easy(t, broken);
    long delay;
    if (replay) {
        /* after libcurl's own five immediate replays: a server this busy or this quick to rotate is given a moment */
        delay = pgw_upstream_backoff_ms(++t->replays);
        pgw_log_info(MODULE_NAME, "%s: %s; Poe did not process the request: replay %d of %d in %ld ms (not a retry)", t->url,
                     why, t->replays, MAX_REPLAYS, delay);
    } else {
        delay = t->retry_after_ms >= 0 ? t->retry_after_ms : pgw_upstream_backoff_ms(t->attempts - t->replays);
        if (delay > RETRY_AFTER_CAP_MS)
            delay = RETRY_AFTER_CAP_MS;
        pgw_log_info(MODULE_NAME, "%s: %s; retry %d of %d in %ld ms", t->url, why, t->attempts - t->replays, t->max_retries,
                     delay);
    }
    atomic_fetch_add_explicit(&t->up->retries, 1, memory_order_relaxed);
    t->state = ST_BACKOFF;
    arm_timer(t, (uint64_t)delay);
}

static void on_transfer_timer(uv_timer_t *timer)
{
    pgw_upstream_transfer_t *t = timer->data;
    char msg[128];

    switch (t->state) {
    case ST_BACKOFF:
        start_attempt(t);
        break;
    case ST_WAITING_HEAD:
        if (!t->engaged) { /* still queued for a connection (see on_engaged) */
            arm_timer(t, (uint64_t)(t->timeout * 1000));
            break;
        }
        snprintf(msg, sizeof(msg), "no response within %.0f s", t->timeout);
        complete(t, PGW_UPSTREAM_TIMEOUT, msg);
        break;
    case ST_STREAMING: {
        uint64_t now = uv_now(t->up->loop), limit = (uint64_t)(t->stream_timeout * 1000);
        if (t->paused || now - t->last_activity < limit) {
            /* activity since the timer was set: sleep for what remains of the window */
            arm_timer(t, t->paused ? limit : limit - (now - t->last_activity));
        } else {
            snprintf(msg, sizeof(msg), "no data for %.0f s", t->stream_timeout);
            complete(t, PGW_UPSTREAM_STALL, msg);
        }
    } break;
    }
}

/*
 * The answer has arrived whole by its Content-Length. libcurl 7.88 then ends the transfer at once, unless it still has
 * body to send: a server may answer before it has read the whole body (nginx does, for an answer that needs none) and
 * then reset the rest of the upload with RST_STREAM(NO_ERROR), or stop reading it. HTTP/2 has the client take the
 * complete answer then; libcurl 7.88 does not: the transfer waits for a send that the closed stream never takes (until
 * stream_timeout), or the next send fails it with CURLE_HTTP2_STREAM, which libcurl reports only as "stream N closed" in
 * its verbose log (the error buffer stays empty: "Stream error in the HTTP/2 framing layer"). libcurl 8.3 discards the
 * rest of the body instead. So the transfer ends here as curl would have ended it: once curl has returned (check_info),
 * or in on_done if curl fails it first. What libcurl 7.88 leaves out of reach: an answer without a length (a stream)
 * cannot be told complete, and keeps curl's verdict; and answer bytes it reads together with the reset it drops, head
 * included, so such an attempt fails as if nothing had come (and is retried, on the budget).
 */
static void answered(pgw_upstream_transfer_t *t)
{
    if (t->whole)
        return;
    t->whole = 1;
    h2o_linklist_insert(&t->up->answered, &t->answered_link);
}

/* End of a header block: decide whether this attempt is final. Returns 0 to go on, -1 to abort the attempt. */
static int on_header_block_end(pgw_upstream_transfer_t *t)
{
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200) {
        t->hdrbuf->size = 0; /* an interim response; the real head follows */
        return 0;
    }
    curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &t->content_length);
    if (t->content_length == 0)
        answered(t);
    if (status_is_retryable((int)status) && retries_left(t)) {
        t->discard = 1;
        t->retry_after_ms = pgw_upstream_parse_retry_after(pgw_upstream_header(t, H2O_STRLIT("retry-after")), time(NULL));
        return 0;
    }
    t->state = ST_STREAMING;
    arm_timer(t, (uint64_t)(t->stream_timeout * 1000));
    t->cb->on_head(t, (int)status);
    return t->cancelled ? -1 : 0;
}

static size_t on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    pgw_upstream_transfer_t *t = userdata;
    size_t len = size * nitems;
    const char *p = buffer, *end = buffer + len;

    if (t->cancelled)
        return 0;
    t->last_activity = uv_now(t->up->loop);
    while (end != p && (end[-1] == '\n' || end[-1] == '\r'))
        --end;
    if (end == p)
        return on_header_block_end(t) == 0 ? len : 0;
    if (end - p >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        t->hdrbuf->size = 0; /* status line: a new header block begins */
        return len;
    }
    const char *colon = memchr(p, ':', end - p);
    if (colon == NULL)
        return len;
    const char *v = colon + 1;
    while (v != end && (*v == ' ' || *v == '\t'))
        ++v;
    h2o_iovec_t dst = h2o_buffer_reserve(&t->hdrbuf, (end - p) + 2);
    size_t nlen = colon - p;
    for (size_t i = 0; i != nlen; ++i)
        dst.base[i] = (char)tolower((unsigned char)p[i]);
    dst.base[nlen] = '\0';
    memcpy(dst.base + nlen + 1, v, end - v);
    dst.base[nlen + 1 + (end - v)] = '\0';
    t->hdrbuf->size += nlen + 1 + (end - v) + 1;
    return len;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    pgw_upstream_transfer_t *t = userdata;
    size_t len = size * nmemb;

    if (t->cancelled)
        return 0;
    t->last_activity = uv_now(t->up->loop);
    if (!t->discard && t->state == ST_STREAMING && t->cb->on_body(t, ptr, len) != 0) {
        if (t->cancelled)
            return 0;
        t->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (t->cancelled)
        return 0;
    t->received += (curl_off_t)len;
    if (t->content_length >= 0 && t->received >= t->content_length)
        answered(t);
    return len;
}

static void on_done(pgw_upstream_transfer_t *t, CURLcode result)
{
    char msg[CURL_ERROR_SIZE + 64];

    if (t->cancelled) /* destroyed from the cancelled list */
        return;
    if (t->whole) /* the answer is complete: what failed was sending the rest of the body */
        result = CURLE_OK;
    if (result == CURLE_OK && t->discard) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        snprintf(msg, sizeof(msg), "status %ld", status);
        retry_later(t, msg, 0, 0);
        return;
    }
    if (result == CURLE_OK) {
        if (t->state != ST_STREAMING) /* a response without a final head cannot happen, but must not hang */
            complete(t, PGW_UPSTREAM_BROKEN, "response ended without a head");
        else
            complete(t, PGW_UPSTREAM_OK, NULL);
        return;
    }
    snprintf(msg, sizeof(msg), "%s", t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(result));
    if (t->state != ST_STREAMING && !t->discard && never_processed(t) && t->replays < MAX_REPLAYS) {
        retry_later(t, msg, 1, 1);
        return;
    }
    if (t->state != ST_STREAMING && (t->discard || result_is_retryable(result)) && retries_left(t)) {
        retry_later(t, msg, 1, 0);
        return;
    }
    complete(t, t->state == ST_STREAMING ? PGW_UPSTREAM_BROKEN : PGW_UPSTREAM_CONNECT, msg);
}

static void check_info(pgw_upstream_t *up)
{
    CURLMsg *msg;
    int pending;
    if (up->in_curl != 0)
        return;
    while (!h2o_linklist_is_empty(&up->cancelled))
        destroy_transfer(H2O_STRUCT_FROM_MEMBER(pgw_upstream_transfer_t, link, up->cancelled.next));
    for (struct multi *m = &up->tls; m != NULL; m = m == &up->tls ? &up->plain : NULL) {
        while ((msg = curl_multi_info_read(m->handle, &pending)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            pgw_upstream_transfer_t *t;
            CURLcode result = msg->data.result;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            on_done(t, result);
        }
    }
    while (!h2o_linklist_is_empty(&up->answered)) { /* whole answers curl holds on to (see answered) */
        pgw_upstream_transfer_t *t = H2O_STRUCT_FROM_MEMBER(pgw_upstream_transfer_t, answered_link, up->answered.next);
        h2o_linklist_unlink(&t->answered_link);
        on_done(t, CURLE_OK);
    }
    free_upload_buffers(up);
}

static void init_multi(pgw_upstream_t *up, struct multi *multi, unsigned max_host_connections)
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
     * only when it leaves (on_engaged). Idle connections kept for reuse are bounded apart (CURLMOPT_MAXCONNECTS: past it,
     * the oldest idle one is closed). */
    curl_multi_setopt(multi->handle, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_connections);
    curl_multi_setopt(multi->handle, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS_KEPT);
    /* The client-side cap on streams per connection. libcurl 7.88 itself opens at most 100 (HTTP/2's recommended
     * minimum) before the server's SETTINGS arrive and then what the server allows; this only stops a server that allows
     * thousands from getting them all. Past the limit a worker opens another connection (up to the cap above) or
     * queues. */
    curl_multi_setopt(multi->handle, CURLMOPT_MAX_CONCURRENT_STREAMS, (long)MAX_STREAMS_PER_CONNECTION);
}

pgw_upstream_t *pgw_upstream_create(uv_loop_t *loop, const char *ca_file, unsigned max_host_connections)
{
    pgw_upstream_t *up = h2o_mem_alloc(sizeof(*up));
    memset(up, 0, sizeof(*up));
    up->loop = loop;
    up->max_host_connections = max_host_connections != 0 ? max_host_connections : PGW_UPSTREAM_DEFAULT_CONNECTIONS;
    h2o_linklist_init_anchor(&up->transfers);
    h2o_linklist_init_anchor(&up->polls);
    h2o_linklist_init_anchor(&up->cancelled);
    h2o_linklist_init_anchor(&up->uploading);
    h2o_linklist_init_anchor(&up->answered);
    up->ca_file = ca_file != NULL ? strdup(ca_file) : NULL;
    init_multi(up, &up->tls, TLS_HOST_CONNECTIONS);
    init_multi(up, &up->plain, up->max_host_connections);

    /* one worker, one thread: the share needs no locks */
    up->share = curl_share_init();
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(up->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    return up;
}

pgw_upstream_transfer_t *pgw_upstream_start(pgw_upstream_t *up, pgw_upstream_request_t *req, const pgw_upstream_callbacks_t *cb,
                                            void *data)
{
    pgw_upstream_transfer_t *t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->up = up;
    t->url = strdup(req->url);
    t->multi = strncasecmp(t->url, "https://", 8) == 0 && req->unix_socket == NULL ? &up->tls : &up->plain;
    t->body[0] = req->body;
    t->body[1] = req->body_more[0];
    t->body[2] = req->body_more[1];
    t->body_len = t->body[0].len + t->body[1].len + t->body[2].len;
    t->headers = req->headers;
    req->headers = NULL;
    t->timeout = req->timeout;
    t->stream_timeout = req->stream_timeout;
    t->max_retries = req->max_retries;
    t->cb = cb;
    t->data = data;
    h2o_buffer_init(&t->hdrbuf, &h2o_socket_buffer_prototype);
    uv_timer_init(up->loop, &t->timer);
    t->timer.data = t;
    h2o_linklist_insert(&up->transfers, &t->link);

    CURL *e = t->easy = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_SHARE, up->share);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Waiting for a connection in progress to say whether it multiplexes pays only where it may: over TLS, where ALPN
     * tells at the handshake. On an http:// URL (HTTP/1.1) libcurl 7.88 learns it only when that first transfer ends, so
     * every request that arrived meanwhile waited for the whole of the first answer (a stream: minutes). */
    if (strncasecmp(t->url, "https://", 8) == 0 && req->unix_socket == NULL)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, t);
    curl_easy_setopt(e, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
    curl_easy_setopt(e, CURLOPT_SOCKOPTDATA, t);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, req->h2c ? CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : CURL_HTTP_VERSION_2TLS);
    if (req->h2c) {
        /* libcurl 7.88 (Debian 12) cannot send a second stream on a prior-knowledge connection: the request after the
         * first one on it fails with a framing error. Until a newer libcurl, each h2c request gets its own connection. */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->unix_socket != NULL) {
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    }
    if (up->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, up->ca_file);
    if (!req->ssl_verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (strcmp(req->method, "POST") == 0) {
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
        curl_easy_setopt(e, CURLOPT_READDATA, t);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, t);
        curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, upload_buffer_size(t));
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }

    start_attempt(t);
    return t;
}

int pgw_upstream_release_body(pgw_upstream_transfer_t *t)
{
    if (t->state != ST_STREAMING || t->body_off != t->body_len)
        return 0;
    memset(t->body, 0, sizeof(t->body)); /* a read after this (there is none once the body is sent) gets end of file */
    t->body_off = 0;
    return 1;
}

void *pgw_upstream_data(pgw_upstream_transfer_t *t)
{
    return t->data;
}

void pgw_upstream_cancel(pgw_upstream_transfer_t *t)
{
    if (t->cancelled)
        return;
    t->cancelled = 1;
    uv_timer_stop(&t->timer);
    if (t->up->in_curl == 0) {
        destroy_transfer(t);
    } else {
        /* curl is running (perhaps this very transfer's callback): the transfer's callbacks now abort it, and it is
         * removed as soon as curl has returned */
        h2o_linklist_unlink(&t->link);
        h2o_linklist_insert(&t->up->cancelled, &t->link);
    }
}

void pgw_upstream_resume(pgw_upstream_transfer_t *t)
{
    if (!t->paused || t->cancelled)
        return;
    t->paused = 0;
    t->last_activity = uv_now(t->up->loop);
    ++t->up->in_curl;
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
    --t->up->in_curl;
    check_info(t->up);
}

h2o_iovec_t pgw_upstream_header(pgw_upstream_transfer_t *t, const char *name, size_t name_len)
{
    const char *p = t->hdrbuf->bytes, *end = p + t->hdrbuf->size;
    while (p < end) {
        size_t nlen = strlen(p);
        const char *v = p + nlen + 1;
        size_t vlen = strlen(v);
        if (nlen == name_len && memcmp(p, name, name_len) == 0)
            return h2o_iovec_init(v, vlen);
        p = v + vlen + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

void pgw_upstream_foreach_header(pgw_upstream_transfer_t *t, void (*cb)(void *ctx, h2o_iovec_t name, h2o_iovec_t value),
                                 void *ctx)
{
    const char *p = t->hdrbuf->bytes, *end = p + t->hdrbuf->size;
    while (p < end) {
        size_t nlen = strlen(p);
        const char *v = p + nlen + 1;
        size_t vlen = strlen(v);
        cb(ctx, h2o_iovec_init(p, nlen), h2o_iovec_init(v, vlen));
        p = v + vlen + 1;
    }
}

struct curl_slist *pgw_upstream_add_header(struct curl_slist *list, const char *name, h2o_iovec_t value)
{
    char buf[8192];
    int n = snprintf(buf, sizeof(buf), "%s: %.*s", name, (int)value.len, value.base);
    if (n < 0 || n >= (int)sizeof(buf))
        return list;
    return curl_slist_append(list, buf);
}

struct curl_slist *pgw_upstream_add_route_headers(struct curl_slist *list, const pgw_route_t *route)
{
    list = curl_slist_append(list, "Content-Type: application/json");
    for (size_t i = 0; i != route->num_extra_headers; ++i)
        if (route->extra_headers[i].value != NULL) /* NULL: names an unset variable, warned at start */
            list = pgw_upstream_add_header(list, route->extra_headers[i].name,
                                           h2o_iovec_init(route->extra_headers[i].value, strlen(route->extra_headers[i].value)));
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    return curl_slist_append(list, "Accept-Encoding: identity");
}

unsigned long long pgw_upstream_retries(pgw_upstream_t *up)
{
    return atomic_load_explicit(&up->retries, memory_order_relaxed);
}

unsigned long long pgw_upstream_sockets(pgw_upstream_t *up)
{
    return atomic_load_explicit(&up->sockets, memory_order_relaxed);
}
