/* poe-gateway: MIT licence. HTTP client to Poe: transfers, their retries and their timers, over two attempt engines.
 *
 * A transfer is one logical request across its attempts. An attempt whose response is retryable (connect failure, or
 * status 429/500/502/503/529) is swallowed whole and the request is sent again after a back-off, as long as retries
 * remain; one that Poe did not process (its HTTP/2 stream refused, PGW_ATTEMPT_NEVER_PROCESSED) is sent again without
 * spending them, a few times at most. The callbacks only ever see the final attempt, so nothing reaches the client from
 * an attempt that is retried. Each transfer owns one uv_timer that serves, in turn, as the first-byte deadline, the
 * silence watchdog and the back-off delay.
 *
 * The attempts themselves go to an engine (attempt.h): https:// URLs to the gateway's own HTTP/2 client (h2client.c,
 * h2conn.c), everything else, and https:// hosts that do not speak HTTP/2 or are reached through a proxy, to libcurl's
 * multi interface (upstream_curl.c); the engine is picked anew for each attempt (engine_for). The engine reports the
 * attempt's header blocks, body bytes and end through the callbacks below (on_attempt_*), and knows nothing of retries,
 * timers or the caller.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <time.h>
#include <h2o.h>
#include "config/config.h"
#include "common/log.h"
#include "upstream/upstream.h"
#include "upstream/upstream_curl.h"
#include "upstream/h2client.h"

#define MODULE_NAME "upstream"
#define RETRY_AFTER_CAP_MS 30000
#define BACKOFF_BASE_MS 250
#define MAX_REPLAYS 4 /* attempts replayed without spending max_retries, per transfer (see on_attempt_done) */

struct st_pgw_upstream_t {
    uv_loop_t *loop;
    pgw_upstream_curl_t *curl;
    pgw_h2client_t *h2; /* NULL: libcurl carries everything (gateway.upstream_client: curl) */
    h2o_linklist_t transfers; /* every live transfer */
    atomic_ullong retries;    /* attempts retried (read by /metrics from another thread) */
};

enum transfer_state {
    ST_WAITING_HEAD, /* attempt in flight, no final head yet */
    ST_STREAMING,    /* final head delivered; body flows to the callbacks */
    ST_BACKOFF,      /* between attempts */
};

struct st_pgw_upstream_transfer_t {
    pgw_attempt_t attempt; /* first: the request as the engines see it (see attempt_transfer) */
    pgw_upstream_t *up;
    h2o_linklist_t link;
    int in_flight; /* an attempt is with the engine */
    int engaged;   /* this attempt has left the engine's queue: it opened a connection or sent its request (on_engaged) */
    char *url;
    double timeout, stream_timeout;
    int max_retries;
    const pgw_upstream_callbacks_t *cb;
    void *data;
    uv_timer_t timer;
    enum transfer_state state;
    int attempts;
    int replays;  /* attempts that did not spend max_retries (see on_attempt_done) */
    int discard;  /* this attempt will be retried: swallow its response */
    int status;   /* the final head's status in this attempt */
    long retry_after_ms;
    int cancelled;
    int paused;
    uint64_t last_activity; /* uv_now of the last byte (or resume) */
    h2o_buffer_t *hdrbuf;   /* "name\0value\0" pairs of the current attempt's final header block */
};

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

static int retries_left(pgw_upstream_transfer_t *t)
{
    return t->attempts - t->replays <= t->max_retries;
}

/* ---- transfers ---- */

static pgw_upstream_transfer_t *attempt_transfer(pgw_attempt_t *a)
{
    return (pgw_upstream_transfer_t *)a;
}

static void on_transfer_timer_close(uv_handle_t *handle)
{
    pgw_upstream_transfer_t *t = handle->data;
    free(t);
}

/* Ends the attempt in flight, if any; `premature`: the response is not complete (Poe must stop producing it). */
static void stop_attempt(pgw_upstream_transfer_t *t, int premature)
{
    if (!t->in_flight)
        return;
    t->in_flight = 0;
    t->attempt.engine->stop(&t->attempt, premature);
}

/* Frees everything; the struct itself goes in the timer's close callback. */
static void destroy_transfer(pgw_upstream_transfer_t *t)
{
    stop_attempt(t, 1);
    if (t->attempt.engine != NULL)
        t->attempt.engine->release(&t->attempt);
    curl_slist_free_all(t->attempt.headers);
    free(t->url);
    h2o_buffer_dispose(&t->hdrbuf);
    h2o_linklist_unlink(&t->link);
    uv_close((uv_handle_t *)&t->timer, on_transfer_timer_close);
}

static void complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    uv_timer_stop(&t->timer);
    stop_attempt(t, err != PGW_UPSTREAM_OK);
    if (!t->cancelled)
        t->cb->on_complete(t, err, errstr);
    destroy_transfer(t);
}

static void on_transfer_timer(uv_timer_t *timer);

static void arm_timer(pgw_upstream_transfer_t *t, uint64_t ms)
{
    uv_timer_start(&t->timer, on_transfer_timer, ms == 0 ? 1 : ms, 0);
}

/*
 * The head deadline (`timeout`) counts from when the attempt leaves the engine's queue. Past the connection cap
 * (gateway.upstream_connections), or while it waits for another transfer's connection to learn whether it multiplexes
 * (or for a stream on a full HTTP/2 connection), a transfer waits in the engine without a connection: that wait is the
 * gateway's, not the upstream's, and must not end in a 504 for a request the upstream never saw. So the deadline is
 * armed anew, whole, the first time the attempt opens a connection of its own (connecting and the TLS handshake count,
 * as before) or, on a connection it reuses, sends its request; until then the timer only re-arms itself
 * (on_transfer_timer). A queue that does not move is bounded by what holds the connections: their own deadlines and the
 * client's patience.
 */
static void on_attempt_engaged(pgw_attempt_t *a)
{
    pgw_upstream_transfer_t *t = attempt_transfer(a);
    if (t->engaged || t->state != ST_WAITING_HEAD)
        return;
    t->engaged = 1;
    arm_timer(t, (uint64_t)(t->timeout * 1000));
}

static void on_attempt_header(pgw_attempt_t *a, const char *name, size_t name_len, const char *value, size_t value_len)
{
    pgw_upstream_transfer_t *t = attempt_transfer(a);
    t->last_activity = uv_now(t->up->loop);
    h2o_iovec_t dst = h2o_buffer_reserve(&t->hdrbuf, name_len + value_len + 2);
    for (size_t i = 0; i != name_len; ++i)
        dst.base[i] = (char)h2o_tolower(name[i]);
    dst.base[name_len] = '\0';
    memcpy(dst.base + name_len + 1, value, value_len);
    dst.base[name_len + 1 + value_len] = '\0';
    t->hdrbuf->size += name_len + 1 + value_len + 1;
}

/* End of a header block: decide whether this attempt is final. Returns 0 to go on, -1 to abort the attempt. */
static int on_attempt_head(pgw_attempt_t *a, int status, int64_t content_length)
{
    pgw_upstream_transfer_t *t = attempt_transfer(a);
    (void)content_length;
    if (t->cancelled)
        return -1;
    t->last_activity = uv_now(t->up->loop);
    if (status < 200) {
        t->hdrbuf->size = 0; /* an interim response (the real head follows), or a new block */
        return 0;
    }
    t->status = status;
    if (status_is_retryable(status) && retries_left(t)) {
        t->discard = 1;
        t->retry_after_ms = pgw_upstream_parse_retry_after(pgw_upstream_header(t, H2O_STRLIT("retry-after")), time(NULL));
        return 0;
    }
    t->state = ST_STREAMING;
    arm_timer(t, (uint64_t)(t->stream_timeout * 1000));
    t->cb->on_head(t, status);
    return t->cancelled ? -1 : 0;
}

static int on_attempt_body(pgw_attempt_t *a, const char *bytes, size_t len)
{
    pgw_upstream_transfer_t *t = attempt_transfer(a);
    if (t->cancelled)
        return -1;
    t->last_activity = uv_now(t->up->loop);
    if (!t->discard && t->state == ST_STREAMING && t->cb->on_body(t, bytes, len) != 0) {
        if (t->cancelled)
            return -1;
        t->paused = 1;
        return 1;
    }
    return t->cancelled ? -1 : 0;
}

/* The engine for the next attempt: the HTTP/2 client when it takes the URL, else libcurl. */
static const pgw_attempt_engine_t *engine_for(pgw_upstream_transfer_t *t)
{
    pgw_upstream_t *up = t->up;
    if (up->h2 != NULL && pgw_h2client_accepts(up->h2, &t->attempt))
        return pgw_h2client_engine(up->h2);
    return pgw_upstream_curl_engine(up->curl);
}

static void start_attempt(pgw_upstream_transfer_t *t)
{
    const pgw_attempt_engine_t *engine = engine_for(t);
    if (engine != t->attempt.engine) {
        if (t->attempt.engine != NULL)
            t->attempt.engine->release(&t->attempt);
        t->attempt.engine = engine;
    }
    ++t->attempts;
    t->state = ST_WAITING_HEAD;
    t->discard = 0;
    t->status = 0;
    t->retry_after_ms = -1;
    t->hdrbuf->size = 0;
    t->engaged = 0;
    t->last_activity = uv_now(t->up->loop);
    arm_timer(t, (uint64_t)(t->timeout * 1000));
    t->in_flight = 1;
    t->attempt.engine->start(&t->attempt);
}

/* `broken`: the attempt failed at the transport level; its connection is not to be reused. `replay`: Poe did not process
 * the request (PGW_ATTEMPT_NEVER_PROCESSED), so the attempt does not count against max_retries. */
static void retry_later(pgw_upstream_transfer_t *t, const char *why, int broken, int replay)
{
    stop_attempt(t, broken);
    long delay;
    if (replay) {
        /* after an engine's own immediate replays (libcurl makes five): a server this busy or this quick to rotate is
         * given a moment */
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

static void on_attempt_done(pgw_attempt_t *a, pgw_attempt_result_t result, const char *errstr)
{
    pgw_upstream_transfer_t *t = attempt_transfer(a);
    char msg[64];

    t->in_flight = 0;
    if (t->cancelled)
        return;
    if (result == PGW_ATTEMPT_ELSEWHERE) { /* again at once, on the engine engine_for picks now; not a retry */
        --t->attempts;
        t->state = ST_BACKOFF;
        arm_timer(t, 0);
        return;
    }
    if (result == PGW_ATTEMPT_OK && t->discard) {
        snprintf(msg, sizeof(msg), "status %d", t->status);
        retry_later(t, msg, 0, 0);
        return;
    }
    if (result == PGW_ATTEMPT_OK) {
        if (t->state != ST_STREAMING) /* a response without a final head cannot happen, but must not hang */
            complete(t, PGW_UPSTREAM_BROKEN, "response ended without a head");
        else
            complete(t, PGW_UPSTREAM_OK, NULL);
        return;
    }
    if (t->state != ST_STREAMING && !t->discard && result == PGW_ATTEMPT_NEVER_PROCESSED && t->replays < MAX_REPLAYS) {
        retry_later(t, errstr, 1, 1);
        return;
    }
    if (t->state != ST_STREAMING && (t->discard || result != PGW_ATTEMPT_FAILED) && retries_left(t)) {
        retry_later(t, errstr, 1, 0);
        return;
    }
    complete(t, t->state == ST_STREAMING ? PGW_UPSTREAM_BROKEN : PGW_UPSTREAM_CONNECT, errstr);
}

static const pgw_attempt_callbacks_t attempt_callbacks = {on_attempt_engaged, on_attempt_header, on_attempt_head,
                                                          on_attempt_body, on_attempt_done};

static void on_transfer_timer(uv_timer_t *timer)
{
    pgw_upstream_transfer_t *t = timer->data;
    char msg[128];

    switch (t->state) {
    case ST_BACKOFF:
        start_attempt(t);
        break;
    case ST_WAITING_HEAD:
        if (!t->engaged) { /* still queued for a connection (see on_attempt_engaged) */
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

pgw_upstream_t *pgw_upstream_create(uv_loop_t *loop, const char *ca_file, unsigned max_host_connections, int builtin_h2)
{
    pgw_upstream_t *up = h2o_mem_alloc(sizeof(*up));
    memset(up, 0, sizeof(*up));
    up->loop = loop;
    h2o_linklist_init_anchor(&up->transfers);
    up->curl = pgw_upstream_curl_create(loop, ca_file,
                                        max_host_connections != 0 ? max_host_connections : PGW_UPSTREAM_DEFAULT_CONNECTIONS);
    if (builtin_h2)
        up->h2 = pgw_h2client_create(loop, ca_file);
    return up;
}

pgw_upstream_transfer_t *pgw_upstream_start(pgw_upstream_t *up, pgw_upstream_request_t *req, const pgw_upstream_callbacks_t *cb,
                                            void *data)
{
    pgw_upstream_transfer_t *t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->up = up;
    t->url = strdup(req->url);
    t->attempt.cb = &attempt_callbacks;
    t->attempt.url = t->url;
    t->attempt.method = strcmp(req->method, "POST") == 0 ? "POST" : strcmp(req->method, "GET") == 0 ? "GET" : req->method;
    t->attempt.body[0] = req->body;
    t->attempt.body[1] = req->body_more[0];
    t->attempt.body[2] = req->body_more[1];
    t->attempt.body_len = req->body.len + req->body_more[0].len + req->body_more[1].len;
    t->attempt.headers = req->headers;
    req->headers = NULL;
    t->attempt.ssl_verify = req->ssl_verify;
    t->attempt.h2c = req->h2c;
    t->attempt.unix_socket = req->unix_socket;
    t->timeout = req->timeout;
    t->stream_timeout = req->stream_timeout;
    t->max_retries = req->max_retries;
    t->cb = cb;
    t->data = data;
    h2o_buffer_init(&t->hdrbuf, &h2o_socket_buffer_prototype);
    uv_timer_init(up->loop, &t->timer);
    t->timer.data = t;
    h2o_linklist_insert(&up->transfers, &t->link);
    start_attempt(t);
    return t;
}

int pgw_upstream_release_body(pgw_upstream_transfer_t *t)
{
    if (t->state != ST_STREAMING || !t->in_flight || !t->attempt.engine->body_sent(&t->attempt))
        return 0;
    /* a read after this (there is none once the body is sent) gets end of file */
    memset(t->attempt.body, 0, sizeof(t->attempt.body));
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
    destroy_transfer(t); /* the engine lets go of the attempt at once, even from inside its callbacks */
}

void pgw_upstream_resume(pgw_upstream_transfer_t *t)
{
    if (!t->paused || t->cancelled)
        return;
    t->paused = 0;
    t->last_activity = uv_now(t->up->loop);
    if (t->in_flight)
        t->attempt.engine->resume(&t->attempt);
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
    return pgw_upstream_curl_sockets(up->curl) + (up->h2 != NULL ? pgw_h2client_sockets(up->h2) : 0);
}
