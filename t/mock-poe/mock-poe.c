/* poe-gateway: MIT licence. Mock Poe API server for the test suite: Poe-shaped default answers, scripted responses, a record. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* POLLRDHUP */
#endif
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <uv.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "plan.h"
#include "poe.h"
#include "serve/uvread.h"

/*
 * One uv loop, one h2o context, one handler at "/" that sees every request on both listeners.
 *
 * Every request outside /_mock/ is recorded and then answered by a response plan (mock_resp_t). A plan is status,
 * headers, a list of body chunks and timing (delay before the head, delay between chunks, hang, cut, or a dropped
 * connection instead of the head). Plans come from
 * the scripted FIFO (POST /_mock/script) or from the Poe-shaped default routes in poe.c, and one small engine plays them:
 * each chunk is its own h2o_send, and the next one goes out from the generator's proceed callback, after
 * chunk_delay_ms on a uv timer when one is set.
 *
 * For load tests (bench/), --no-record keeps only the request count, so that memory stays flat over millions of
 * requests, and a script's "stamp" writes the send time into each chunk (MOCK_STAMP_PLACEHOLDER in plan.h).
 *
 * A client that goes away is seen in three ways: the generator's stop callback (the response has started), the request
 * pool's dispose callback (HTTP/2 stream reset or connection closed before the head), and for HTTP/1 a 50 ms poll for
 * POLLRDHUP on the socket while a plan is waiting on a timer or hanging, because h2o 2.2.5 does not read from an HTTP/1
 * connection while a request is being processed and so would never notice.
 */

#define MODULE_NAME "mock-poe"
#define PEER_WATCH_INTERVAL_MS 50

struct st_mock_timer_t {
    uv_timer_t uv;               /* first member: the close callback frees the whole struct through it */
    struct st_mock_resp_t *resp; /* owner; NULL once the owner has let go and the handle is closing */
    void (*cb)(struct st_mock_resp_t *resp);
};

struct st_script_t {
    struct st_script_t *next;
    char *match_path; /* owned, may be NULL */
    char *match_model;
    int status;
    size_t num_headers;
    h2o_iovec_t *header_names; /* owned, lower-cased */
    h2o_iovec_t *header_values;
    int has_body;
    h2o_iovec_t body;
    size_t num_chunks;
    h2o_iovec_t *chunks; /* NULL unless `chunks` was given */
    uint64_t delay_ms;
    uint64_t chunk_delay_ms;
    int hang;
    int drop;
    int stamp;
    ssize_t cut_after;
    uint64_t repeat;
};

struct st_record_t {
    h2o_iovec_t method; /* all strings owned and NUL-terminated */
    h2o_iovec_t path;
    const char *protocol;
    int tls;
    size_t num_headers;
    h2o_iovec_t *header_names;
    h2o_iovec_t *header_values;
    h2o_iovec_t body;
    uint64_t at_ms; /* when it arrived (mock_now_ms), for tests of shaped rates */
};

static struct {
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx[2]; /* 0: plain, 1: TLS */
    uv_tcp_t listener[2];
    uv_signal_t sigterm;
    uv_signal_t sigint;
} server;

static struct {
    uint64_t connections;
    uint64_t tls_connections;
    uint64_t open_connections; /* live state, like active: not cleared by a reset */
    uint64_t open_tls_connections;
    uint64_t requests;
    int64_t active;
    uint64_t client_aborts;
    uint64_t last_abort_ms;
} stats;

static struct {
    struct st_record_t *entries;
    size_t size;
    size_t capacity;
} records;

static struct st_script_t *script_head, **script_tail = &script_head;
static int no_record; /* --no-record: count requests, keep nothing of them */

static h2o_iovec_t dup_iovec(const char *s, size_t len)
{
    char *p = h2o_mem_alloc(len + 1);
    if (len != 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return h2o_iovec_init(p, len);
}

/* uv timers owned by a response plan; the handle outlives the plan until its close callback runs. */
static void timer_on_close(uv_handle_t *handle)
{
    free(handle);
}

static void timer_on_fire(uv_timer_t *uv)
{
    struct st_mock_timer_t *timer = (struct st_mock_timer_t *)uv;
    if (timer->resp != NULL)
        timer->cb(timer->resp);
}

static void timer_start(struct st_mock_timer_t **slot, mock_resp_t *resp, uint64_t ms, uint64_t repeat, void (*cb)(mock_resp_t *))
{
    if (*slot == NULL) {
        *slot = h2o_mem_alloc(sizeof(**slot));
        uv_timer_init(server.ctx.loop, &(*slot)->uv);
        (*slot)->resp = resp;
    }
    (*slot)->cb = cb;
    uv_timer_start(&(*slot)->uv, timer_on_fire, ms, repeat);
}

static void timer_dispose(struct st_mock_timer_t **slot)
{
    if (*slot == NULL)
        return;
    uv_timer_stop(&(*slot)->uv);
    (*slot)->resp = NULL;
    uv_close((uv_handle_t *)&(*slot)->uv, timer_on_close);
    *slot = NULL;
}

/* The response engine */

/* Overwrites the digits of every MOCK_STAMP_PLACEHOLDER in the chunk (pool memory, written in place) with the time now. */
static void stamp_chunk(h2o_iovec_t *buf)
{
    static const size_t len = sizeof(MOCK_STAMP_PLACEHOLDER) - 1, prefix_len = sizeof(MOCK_STAMP_PREFIX) - 1;
    char digits[MOCK_STAMP_DIGITS + 1];
    struct timespec ts;
    char *p = buf->base, *end = buf->base + buf->len;
    int have_digits = 0;

    while ((p = memmem(p, end - p, MOCK_STAMP_PREFIX, prefix_len)) != NULL && (size_t)(end - p) >= len) {
        if (p[len - 1] != '@') {
            p += prefix_len;
            continue;
        }
        if (!have_digits) {
            clock_gettime(CLOCK_MONOTONIC, &ts);
            snprintf(digits, sizeof(digits), "%0*" PRIu64, MOCK_STAMP_DIGITS, (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec);
            have_digits = 1;
        }
        memcpy(p + prefix_len, digits, MOCK_STAMP_DIGITS);
        p += len;
    }
}

static void resp_finish(mock_resp_t *resp)
{
    if (!resp->done) {
        resp->done = 1;
        if (resp->counted)
            --stats.active;
    }
    timer_dispose(&resp->timer);
    timer_dispose(&resp->watch);
}

static void resp_abort(mock_resp_t *resp)
{
    if (!resp->done) {
        resp->done = 1;
        if (resp->counted) {
            --stats.active;
            ++stats.client_aborts;
            stats.last_abort_ms = mock_now_ms();
        }
    }
    timer_dispose(&resp->timer);
    timer_dispose(&resp->watch);
}

static void send_next(mock_resp_t *resp)
{
    h2o_req_t *req = resp->req;

    for (;;) {
        if (resp->cut_after >= 0 && resp->next_chunk >= (size_t)resp->cut_after) {
            resp_finish(resp);
            h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
            return;
        }
        if (resp->next_chunk >= resp->chunks.size) {
            resp_finish(resp);
            h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
            return;
        }
        h2o_iovec_t *buf = resp->chunks.entries + resp->next_chunk++;
        if (resp->stamp)
            stamp_chunk(buf);
        if (resp->cut_after < 0 && resp->next_chunk == resp->chunks.size) {
            resp_finish(resp);
            h2o_send(req, buf, 1, H2O_SEND_STATE_FINAL);
            return;
        }
        if (buf->len != 0) {
            resp->inflight = 1;
            h2o_send(req, buf, 1, H2O_SEND_STATE_IN_PROGRESS);
            return;
        }
        /* An empty chunk is not handed to h2o_send (there is nothing to write) but keeps its place in the timing and cut_after. */
        if (resp->chunk_delay_ms != 0) {
            timer_start(&resp->timer, resp, resp->chunk_delay_ms, 0, send_next);
            return;
        }
    }
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    mock_resp_t *resp = H2O_STRUCT_FROM_MEMBER(mock_resp_t, super, generator);

    (void)req;
    resp->inflight = 0;
    if (resp->done)
        return;
    if (resp->chunk_delay_ms != 0) {
        timer_start(&resp->timer, resp, resp->chunk_delay_ms, 0, send_next);
    } else {
        send_next(resp);
    }
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    resp_abort(H2O_STRUCT_FROM_MEMBER(mock_resp_t, super, generator));
}

static void on_resp_dispose(void *p)
{
    resp_abort(p);
}

static void send_head(mock_resp_t *resp)
{
    h2o_req_t *req = resp->req;
    h2o_socket_t *sock;

    if (resp->drop && req->conn->callbacks->get_socket != NULL && (sock = req->conn->callbacks->get_socket(req->conn)) != NULL) {
        /* a server that goes away: h2o reads the end of the stream and closes the connection with every stream on it */
        resp_finish(resp);
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
        return;
    }
    resp->started = 1;
    if (resp->content_length != SIZE_MAX)
        req->res.content_length = resp->content_length;
    h2o_start_response(req, &resp->super);
    send_next(resp);
}

/*
 * HTTP/1 only: h2o stops reading the connection while a request is processed, so a client that hangs up is not seen
 * until something is written. While the plan waits, poll the socket for the peer's FIN; when it comes, count the abort
 * and end the response with an error so that h2o closes the connection and frees the request.
 */
static void watch_peer(mock_resp_t *resp)
{
    h2o_req_t *req = resp->req;
    h2o_socket_t *sock;

    if (resp->inflight || resp->done || req->conn->callbacks->get_socket == NULL ||
        (sock = req->conn->callbacks->get_socket(req->conn)) == NULL)
        return;
    struct pollfd pfd = {.fd = h2o_socket_get_fd(sock), .events = POLLIN | POLLRDHUP};
    if (pfd.fd < 0 || poll(&pfd, 1, 0) <= 0 || (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0)
        return;

    resp_abort(resp);
    req->http1_is_persistent = 0;
    if (!resp->started) {
        resp->started = 1;
        h2o_start_response(req, &resp->super);
    }
    h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
}

static void resp_run(mock_resp_t *resp)
{
    if (resp->counted) {
        ++stats.active;
        if (resp->req->version < 0x200 && (resp->hang || resp->delay_ms != 0 || resp->chunk_delay_ms != 0))
            timer_start(&resp->watch, resp, PEER_WATCH_INTERVAL_MS, PEER_WATCH_INTERVAL_MS, watch_peer);
    }
    if (resp->hang)
        return;
    if (resp->delay_ms != 0) {
        timer_start(&resp->timer, resp, resp->delay_ms, 0, send_head);
        return;
    }
    send_head(resp);
}

static mock_resp_t *resp_new(h2o_req_t *req, int counted)
{
    mock_resp_t *resp = h2o_mem_alloc_shared(&req->pool, sizeof(*resp), on_resp_dispose);

    memset(resp, 0, sizeof(*resp));
    resp->super.proceed = on_proceed;
    resp->super.stop = on_stop;
    resp->req = req;
    resp->content_length = SIZE_MAX;
    resp->cut_after = -1;
    resp->counted = counted;
    req->res.status = 200;
    req->res.reason = "OK";
    return resp;
}

/* The request record */

static void record_free(struct st_record_t *rec)
{
    free(rec->method.base);
    free(rec->path.base);
    for (size_t i = 0; i != rec->num_headers; ++i) {
        free(rec->header_names[i].base);
        free(rec->header_values[i].base);
    }
    free(rec->header_names);
    free(rec->header_values);
    free(rec->body.base);
}

static void record_add_header(struct st_record_t *rec, const char *name, size_t name_len, h2o_iovec_t value)
{
    /* A repeated field is folded into one "a, b" value so that the record's headers stay a JSON object. */
    for (size_t i = 0; i != rec->num_headers; ++i) {
        if (h2o_memis(rec->header_names[i].base, rec->header_names[i].len, name, name_len)) {
            h2o_iovec_t old = rec->header_values[i];
            char *joined = h2o_mem_alloc(old.len + 2 + value.len + 1);
            memcpy(joined, old.base, old.len);
            memcpy(joined + old.len, ", ", 2);
            memcpy(joined + old.len + 2, value.base, value.len);
            joined[old.len + 2 + value.len] = '\0';
            free(old.base);
            rec->header_values[i] = h2o_iovec_init(joined, old.len + 2 + value.len);
            return;
        }
    }
    h2o_iovec_t lname = dup_iovec(name, name_len);
    h2o_strtolower(lname.base, lname.len);
    rec->header_names[rec->num_headers] = lname;
    rec->header_values[rec->num_headers] = dup_iovec(value.base, value.len);
    ++rec->num_headers;
}

static int request_is_tls(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock != NULL)
        return sock->ssl != NULL;
    return req->scheme == &H2O_URL_SCHEME_HTTPS;
}

/* Appends the request to the record and returns its 1-based sequence number (the N of req_poe_mock<N>). */
static uint64_t record_request(h2o_req_t *req)
{
    if (no_record)
        return ++stats.requests;
    if (records.size == records.capacity) {
        records.capacity = records.capacity == 0 ? 16 : records.capacity * 2;
        records.entries = realloc(records.entries, records.capacity * sizeof(records.entries[0]));
        if (records.entries == NULL)
            h2o_fatal("no memory");
    }
    struct st_record_t *rec = records.entries + records.size++;
    memset(rec, 0, sizeof(*rec));
    rec->method = dup_iovec(req->input.method.base, req->input.method.len);
    rec->path = dup_iovec(req->input.path.base, req->input.path.len);
    rec->protocol = req->version >= 0x200 ? "HTTP/2" : req->version == 0x101 ? "HTTP/1.1" : "HTTP/1.0";
    rec->tls = request_is_tls(req);
    rec->at_ms = mock_now_ms();
    rec->header_names = h2o_mem_alloc((req->headers.size + 1) * sizeof(h2o_iovec_t));
    rec->header_values = h2o_mem_alloc((req->headers.size + 1) * sizeof(h2o_iovec_t));
    /* h2o keeps the authority (Host or :authority) out of the header list; record it as "host" for both protocols. */
    if (h2o_find_header(&req->headers, H2O_TOKEN_HOST, -1) == -1 && req->input.authority.base != NULL)
        record_add_header(rec, H2O_STRLIT("host"), req->input.authority);
    for (size_t i = 0; i != req->headers.size; ++i) {
        const h2o_header_t *h = req->headers.entries + i;
        record_add_header(rec, h->name->base, h->name->len, h->value);
    }
    if (req->entity.base != NULL)
        rec->body = dup_iovec(req->entity.base, req->entity.len);
    else
        rec->body = dup_iovec("", 0);
    return ++stats.requests;
}

/* The script queue */

static void script_free(struct st_script_t *s)
{
    free(s->match_path);
    free(s->match_model);
    for (size_t i = 0; i != s->num_headers; ++i) {
        free(s->header_names[i].base);
        free(s->header_values[i].base);
    }
    free(s->header_names);
    free(s->header_values);
    free(s->body.base);
    for (size_t i = 0; i != s->num_chunks; ++i)
        free(s->chunks[i].base);
    free(s->chunks);
    free(s);
}

static int get_uint(yajl_val v, uint64_t max, uint64_t *out)
{
    if (!YAJL_IS_INTEGER(v) || YAJL_GET_INTEGER(v) < 0 || (uint64_t)YAJL_GET_INTEGER(v) > max)
        return 0;
    *out = (uint64_t)YAJL_GET_INTEGER(v);
    return 1;
}

/* Builds a script entry from one element of "responses"; returns NULL on success or a message saying what is wrong. */
static const char *script_parse(yajl_val r, struct st_script_t **out)
{
    struct st_script_t *s = h2o_mem_alloc(sizeof(*s));
    const char *err = NULL;
    uint64_t u;

    memset(s, 0, sizeof(*s));
    s->status = 200;
    s->cut_after = -1;
    s->repeat = 1;
    if (!YAJL_IS_OBJECT(r)) {
        err = "each response must be an object";
        goto Error;
    }
    for (size_t i = 0; i != r->u.object.len; ++i) {
        const char *key = r->u.object.keys[i];
        yajl_val v = r->u.object.values[i];
        if (strcmp(key, "match") == 0) {
            if (!YAJL_IS_OBJECT(v)) {
                err = "match must be an object";
                goto Error;
            }
            for (size_t j = 0; j != v->u.object.len; ++j) {
                const char *mkey = v->u.object.keys[j];
                const char *mval = YAJL_GET_STRING(v->u.object.values[j]);
                if (mval == NULL || (strcmp(mkey, "path") != 0 && strcmp(mkey, "model") != 0)) {
                    err = "match takes only path and model, as strings";
                    goto Error;
                }
                char **slot = strcmp(mkey, "path") == 0 ? &s->match_path : &s->match_model;
                free(*slot);
                *slot = dup_iovec(mval, strlen(mval)).base;
            }
        } else if (strcmp(key, "status") == 0) {
            if (!get_uint(v, 999, &u) || u < 200) {
                err = "status must be an integer from 200 to 999";
                goto Error;
            }
            s->status = (int)u;
        } else if (strcmp(key, "headers") == 0) {
            if (!YAJL_IS_OBJECT(v)) {
                err = "headers must be an object";
                goto Error;
            }
            s->header_names = h2o_mem_alloc((v->u.object.len + 1) * sizeof(h2o_iovec_t));
            s->header_values = h2o_mem_alloc((v->u.object.len + 1) * sizeof(h2o_iovec_t));
            for (size_t j = 0; j != v->u.object.len; ++j) {
                const char *hval = YAJL_GET_STRING(v->u.object.values[j]);
                if (hval == NULL || v->u.object.keys[j][0] == '\0') {
                    err = "headers values must be strings";
                    goto Error;
                }
                s->header_names[s->num_headers] = dup_iovec(v->u.object.keys[j], strlen(v->u.object.keys[j]));
                h2o_strtolower(s->header_names[s->num_headers].base, s->header_names[s->num_headers].len);
                s->header_values[s->num_headers] = dup_iovec(hval, strlen(hval));
                ++s->num_headers;
            }
        } else if (strcmp(key, "body") == 0) {
            if (!YAJL_IS_STRING(v)) {
                err = "body must be a string";
                goto Error;
            }
            s->has_body = 1;
            s->body = dup_iovec(v->u.string, strlen(v->u.string));
        } else if (strcmp(key, "chunks") == 0) {
            if (!YAJL_IS_ARRAY(v)) {
                err = "chunks must be an array of strings";
                goto Error;
            }
            s->chunks = h2o_mem_alloc((v->u.array.len + 1) * sizeof(h2o_iovec_t));
            for (size_t j = 0; j != v->u.array.len; ++j) {
                const char *c = YAJL_GET_STRING(v->u.array.values[j]);
                if (c == NULL) {
                    err = "chunks must be an array of strings";
                    goto Error;
                }
                s->chunks[s->num_chunks++] = dup_iovec(c, strlen(c));
            }
        } else if (strcmp(key, "chunk_delay_ms") == 0 || strcmp(key, "delay_ms") == 0) {
            if (!get_uint(v, 24 * 3600 * 1000, &u)) {
                err = "delays must be non-negative integers (milliseconds)";
                goto Error;
            }
            *(key[0] == 'c' ? &s->chunk_delay_ms : &s->delay_ms) = u;
        } else if (strcmp(key, "hang") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
                err = "hang must be a boolean";
                goto Error;
            }
            s->hang = YAJL_IS_TRUE(v);
        } else if (strcmp(key, "drop") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
                err = "drop must be a boolean";
                goto Error;
            }
            s->drop = YAJL_IS_TRUE(v);
        } else if (strcmp(key, "stamp") == 0) {
            if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
                err = "stamp must be a boolean";
                goto Error;
            }
            s->stamp = YAJL_IS_TRUE(v);
        } else if (strcmp(key, "cut_after") == 0) {
            if (!get_uint(v, 1000000, &u)) {
                err = "cut_after must be a non-negative integer";
                goto Error;
            }
            s->cut_after = (ssize_t)u;
        } else if (strcmp(key, "repeat") == 0) {
            if (!get_uint(v, UINT32_MAX, &u) || u == 0) {
                err = "repeat must be a positive integer";
                goto Error;
            }
            s->repeat = u;
        } else {
            err = "unknown key in response (allowed: match, status, headers, body, chunks, chunk_delay_ms, delay_ms, hang, "
                  "drop, cut_after, repeat, stamp)";
            goto Error;
        }
    }
    if (s->has_body && s->chunks != NULL) {
        err = "body and chunks are exclusive";
        goto Error;
    }
    *out = s;
    return NULL;

Error:
    script_free(s);
    return err;
}

static void script_apply(mock_resp_t *resp, struct st_script_t *s)
{
    h2o_mem_pool_t *pool = &resp->req->pool;
    int has_content_type = 0;

    mock_resp_status(resp, s->status);
    for (size_t i = 0; i != s->num_headers; ++i) {
        h2o_iovec_t name = s->header_names[i];
        /* h2o frames the body itself; a scripted length or transfer coding would contradict it. */
        if (mock_iovec_is(name, "content-length") || mock_iovec_is(name, "transfer-encoding"))
            continue;
        if (mock_iovec_is(name, "content-type"))
            has_content_type = 1;
        mock_resp_header(resp, h2o_strdup(pool, name.base, name.len).base,
                         h2o_strdup(pool, s->header_values[i].base, s->header_values[i].len));
    }
    if (s->chunks != NULL) {
        for (size_t i = 0; i != s->num_chunks; ++i)
            mock_resp_chunk(resp, h2o_strdup(pool, s->chunks[i].base, s->chunks[i].len));
        if (!has_content_type)
            mock_resp_header(resp, "content-type", h2o_iovec_init(H2O_STRLIT("text/event-stream")));
    } else if (s->has_body) {
        mock_resp_body(resp, has_content_type ? NULL : "application/json", h2o_strdup(pool, s->body.base, s->body.len));
    } else {
        resp->content_length = 0;
    }
    resp->delay_ms = s->delay_ms;
    resp->chunk_delay_ms = s->chunk_delay_ms;
    resp->hang = s->hang;
    resp->drop = s->drop;
    resp->stamp = s->stamp;
    resp->cut_after = s->cut_after;
}

/* Gives the request the first queued response whose match fits; returns 0 when none does. */
static int script_take(mock_resp_t *resp, h2o_iovec_t path)
{
    struct st_script_t **slot, *s;
    yajl_val body = NULL;
    int body_parsed = 0;

    for (slot = &script_head; (s = *slot) != NULL; slot = &s->next) {
        if (s->match_path != NULL) {
            /* a prefix, or with a trailing '$' the whole path ("/v1/messages$" is not count_tokens) */
            size_t len = strlen(s->match_path);
            int whole = len != 0 && s->match_path[len - 1] == '$';
            len -= whole;
            if (path.len < len || memcmp(path.base, s->match_path, len) != 0 || (whole && path.len != len))
                continue;
        }
        if (s->match_model != NULL) {
            if (!body_parsed) {
                body = mock_parse_body(resp->req);
                body_parsed = 1;
            }
            const char *model = YAJL_GET_STRING(mock_json_get(body, "model"));
            if (model == NULL || strcasecmp(model, s->match_model) != 0)
                continue;
        }
        break;
    }
    if (body != NULL)
        yajl_tree_free(body);
    if (s == NULL)
        return 0;

    script_apply(resp, s);
    if (--s->repeat == 0) {
        *slot = s->next;
        if (script_tail == &s->next)
            script_tail = slot;
        script_free(s);
    }
    return 1;
}

static size_t script_count(void)
{
    size_t n = 0;
    for (struct st_script_t *s = script_head; s != NULL; s = s->next)
        ++n;
    return n;
}

static void reset_all(void)
{
    while (script_head != NULL) {
        struct st_script_t *s = script_head;
        script_head = s->next;
        script_free(s);
    }
    script_tail = &script_head;
    for (size_t i = 0; i != records.size; ++i)
        record_free(records.entries + i);
    free(records.entries);
    records.entries = NULL;
    records.size = records.capacity = 0;
    /* `active` is live state, not a counter: responses in progress stay counted until they end. */
    stats.connections = 0;
    stats.tls_connections = 0;
    stats.requests = 0;
    stats.client_aborts = 0;
    stats.last_abort_ms = 0;
}

/* The control API under /_mock/ */

static void control_error(mock_resp_t *resp, int status, const char *message)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_kv_str(g, "error", message);
    yajl_gen_map_close(g);
    mock_resp_json(resp, status, mock_gen_finish(g, &resp->req->pool));
}

static void control_script(mock_resp_t *resp)
{
    yajl_val body = mock_parse_body(resp->req), list = mock_json_get(body, "responses");
    struct st_script_t *head = NULL, **tail = &head;
    const char *err = NULL;
    size_t added = 0;

    if (!YAJL_IS_ARRAY(list)) {
        control_error(resp, 400, "body must be {\"responses\":[...]}");
        goto Exit;
    }
    for (size_t i = 0; i != list->u.array.len; ++i) {
        struct st_script_t *s;
        if ((err = script_parse(list->u.array.values[i], &s)) != NULL) {
            h2o_iovec_t msg = mock_pool_printf(&resp->req->pool, "responses[%zu]: %s", i, err);
            control_error(resp, 400, msg.base);
            while (head != NULL) {
                s = head;
                head = s->next;
                script_free(s);
            }
            goto Exit;
        }
        *tail = s;
        tail = &s->next;
        ++added;
    }
    /* All or nothing: the batch joins the queue only when every entry parsed. */
    if (head != NULL) {
        *script_tail = head;
        script_tail = tail;
    }
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "queued", (long long)added);
    mock_gen_kv_int(g, "pending", (long long)script_count());
    yajl_gen_map_close(g);
    mock_resp_json(resp, 200, mock_gen_finish(g, &resp->req->pool));

Exit:
    if (body != NULL)
        yajl_tree_free(body);
}

static void control_requests(mock_resp_t *resp)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_array_open(g);
    for (size_t i = 0; i != records.size; ++i) {
        struct st_record_t *rec = records.entries + i;
        yajl_gen_map_open(g);
        mock_gen_kv_str(g, "method", rec->method.base);
        mock_gen_kv_str(g, "path", rec->path.base);
        mock_gen_kv_str(g, "protocol", rec->protocol);
        mock_gen_str(g, "tls");
        yajl_gen_bool(g, rec->tls);
        mock_gen_kv_int(g, "at_ms", (long long)rec->at_ms);
        mock_gen_str(g, "headers");
        yajl_gen_map_open(g);
        for (size_t j = 0; j != rec->num_headers; ++j) {
            mock_gen_strn(g, rec->header_names[j].base, rec->header_names[j].len);
            mock_gen_strn(g, rec->header_values[j].base, rec->header_values[j].len);
        }
        yajl_gen_map_close(g);
        mock_gen_str(g, "body");
        mock_gen_strn(g, rec->body.base, rec->body.len);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
    mock_resp_json(resp, 200, mock_gen_finish(g, &resp->req->pool));
}

static void control_stats(mock_resp_t *resp)
{
    yajl_gen g = mock_gen_new();
    yajl_gen_map_open(g);
    mock_gen_kv_int(g, "connections", (long long)stats.connections);
    mock_gen_kv_int(g, "tls_connections", (long long)stats.tls_connections);
    mock_gen_kv_int(g, "open_connections", (long long)stats.open_connections);
    mock_gen_kv_int(g, "open_tls_connections", (long long)stats.open_tls_connections);
    mock_gen_kv_int(g, "requests", (long long)stats.requests);
    mock_gen_kv_int(g, "active", (long long)stats.active);
    mock_gen_kv_int(g, "client_aborts", (long long)stats.client_aborts);
    mock_gen_kv_int(g, "last_abort_ms", (long long)stats.last_abort_ms);
    mock_gen_kv_int(g, "pending_scripts", (long long)script_count());
    yajl_gen_map_close(g);
    mock_resp_json(resp, 200, mock_gen_finish(g, &resp->req->pool));
}

static void handle_control(h2o_req_t *req, h2o_iovec_t path)
{
    mock_resp_t *resp = resp_new(req, 0);
    int is_get = mock_iovec_is(req->method, "GET"), is_post = mock_iovec_is(req->method, "POST");

    if (is_post && mock_iovec_is(path, "/_mock/script")) {
        control_script(resp);
    } else if (is_post && mock_iovec_is(path, "/_mock/reset")) {
        reset_all();
        mock_resp_json(resp, 200, h2o_iovec_init(H2O_STRLIT("{\"ok\":true}")));
    } else if (is_post && mock_iovec_is(path, "/_mock/account")) {
        yajl_val body = mock_parse_body(req);
        if (body == NULL || mock_poe_set_account(body) != 0)
            control_error(resp, 400, "body must be {\"balance\": N, \"history\": [...]}");
        else
            mock_resp_json(resp, 200, h2o_iovec_init(H2O_STRLIT("{\"ok\":true}")));
        yajl_tree_free(body);
    } else if (is_get && mock_iovec_is(path, "/_mock/requests")) {
        control_requests(resp);
    } else if (is_get && mock_iovec_is(path, "/_mock/stats")) {
        control_stats(resp);
    } else {
        control_error(resp, 404,
                      "unknown control endpoint (POST /_mock/script, POST /_mock/reset, POST /_mock/account, GET /_mock/requests, "
                      "GET /_mock/stats)");
    }
    resp_run(resp);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    h2o_iovec_t path = req->path;

    (void)self;
    if (req->query_at != SIZE_MAX)
        path.len = req->query_at;
    if (path.len >= 7 && memcmp(path.base, "/_mock/", 7) == 0) {
        handle_control(req, path);
        return 0;
    }

    uint64_t seq = record_request(req);
    mock_resp_t *resp = resp_new(req, 1);
    if (!script_take(resp, path))
        mock_poe_respond(resp, path, seq);
    resp_run(resp);
    return 0;
}

/* Listeners, TLS and the main loop */

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

/* An accepted connection; the handle comes first so that h2o's close callback gets the whole struct. */
struct st_mock_conn_t {
    uv_tcp_t tcp;
    int tls;
};

static void on_conn_close(uv_handle_t *handle)
{
    struct st_mock_conn_t *conn = (struct st_mock_conn_t *)handle;
    --stats.open_connections;
    if (conn->tls)
        --stats.open_tls_connections;
    free(conn);
}

static void on_accept(uv_stream_t *listener, int status)
{
    h2o_accept_ctx_t *accept_ctx = listener->data;
    struct st_mock_conn_t *conn;

    if (status != 0)
        return;
    conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, free_handle);
        return;
    }
    conn->tls = accept_ctx->ssl_ctx != NULL;
    ++stats.connections;
    ++stats.open_connections;
    if (conn->tls) {
        ++stats.tls_connections;
        ++stats.open_tls_connections;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    h2o_accept(accept_ctx, h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_conn_close));
}

/* Binds and listens; returns the bound port, or -1 after printing why not. */
static int listen_backlog = 128;

static int start_listener(size_t index, const char *host, int port)
{
    uv_tcp_t *listener = server.listener + index;
    struct sockaddr_storage addr;
    int namelen = sizeof(addr), r;

    if ((r = strchr(host, ':') != NULL ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr)
                                       : uv_ip4_addr(host, port, (struct sockaddr_in *)&addr)) != 0) {
        fprintf(stderr, "mock-poe: bad host %s: %s\n", host, uv_strerror(r));
        return -1;
    }
    uv_tcp_init(server.ctx.loop, listener);
    listener->data = server.accept_ctx + index;
    if ((r = uv_tcp_bind(listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)listener, listen_backlog, on_accept)) != 0 ||
        (r = uv_tcp_getsockname(listener, (struct sockaddr *)&addr, &namelen)) != 0) {
        fprintf(stderr, "mock-poe: cannot listen on %s:%d: %s\n", host, port, uv_strerror(r));
        return -1;
    }
    return ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port : ((struct sockaddr_in *)&addr)->sin_port);
}

static SSL_CTX *setup_ssl(const char *cert, const char *key)
{
    SSL_CTX *ssl_ctx = SSL_CTX_new(TLS_server_method());

    if (ssl_ctx == NULL || SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_use_certificate_chain_file(ssl_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl_ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl_ctx) != 1) {
        fprintf(stderr, "mock-poe: cannot load certificate %s / key %s:\n", cert, key);
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    /*
     * h2o_http2_alpn_protocols lists only h2 and its drafts, so a client offering only http/1.1 would get no ALPN answer;
     * list http/1.1 too. After the handshake h2o_accept serves HTTP/2 when the chosen value is one of h2o's h2 tokens and
     * HTTP/1 otherwise.
     */
    static const h2o_iovec_t alpn[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};
    h2o_ssl_register_alpn_protocols(ssl_ctx, alpn);
    return ssl_ctx;
}

static void on_signal(uv_signal_t *handle, int signum)
{
    (void)signum;
    uv_stop(handle->loop);
}

static int parse_port(const char *arg, const char *name)
{
    char *end;
    long v = strtol(arg, &end, 10);

    if (*arg == '\0' || *end != '\0' || v < 0 || v > 65535) {
        fprintf(stderr, "mock-poe: %s must be a port number (0 picks a free one)\n", name);
        exit(2);
    }
    return (int)v;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: mock-poe [--http-port N] [--https-port N --cert FILE --key FILE] [--api-key KEY] [--host ADDR]\n"
                "                [--idle-timeout SECONDS] [--no-record] [--backlog N]\n"
                "Port 0 picks a free port. With neither port given, --http-port 0 is assumed. Prints\n"
                "\"mock-poe listening http=<port> https=<port>\" once both are up (0 for a listener not requested).\n"
                "--no-record keeps no request record (GET /_mock/requests stays empty; for load tests); --backlog sets the\n"
                "listen backlog (default 128).\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"http-port", required_argument, NULL, 'p'},
                                             {"https-port", required_argument, NULL, 's'},
                                             {"cert", required_argument, NULL, 'c'},
                                             {"key", required_argument, NULL, 'k'},
                                             {"api-key", required_argument, NULL, 'a'},
                                             {"host", required_argument, NULL, 'H'},
                                             {"idle-timeout", required_argument, NULL, 't'},
                                             {"no-record", no_argument, NULL, 'n'},
                                             {"backlog", required_argument, NULL, 'b'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *host = "127.0.0.1", *cert = NULL, *key = NULL, *api_key = "test-poe-key";
    int http_port = -1, https_port = -1, bound_http = 0, bound_https = 0, ch;
    long idle_timeout = 120;
    char *end;

    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'p':
            http_port = parse_port(optarg, "--http-port");
            break;
        case 's':
            https_port = parse_port(optarg, "--https-port");
            break;
        case 'c':
            cert = optarg;
            break;
        case 'k':
            key = optarg;
            break;
        case 'a':
            api_key = optarg;
            break;
        case 'H':
            host = optarg;
            break;
        case 't':
            if ((idle_timeout = strtol(optarg, &end, 10)) <= 0 || *end != '\0') {
                fprintf(stderr, "mock-poe: --idle-timeout must be a positive number of seconds\n");
                return 2;
            }
            break;
        case 'n':
            no_record = 1;
            break;
        case 'b':
            if ((listen_backlog = (int)strtol(optarg, &end, 10)) <= 0 || *end != '\0') {
                fprintf(stderr, "mock-poe: --backlog must be a positive number\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (https_port >= 0 && (cert == NULL || key == NULL)) {
        fprintf(stderr, "mock-poe: --https-port needs --cert and --key\n");
        return 2;
    }
    if (http_port < 0 && https_port < 0)
        http_port = 0;

    signal(SIGPIPE, SIG_IGN);
    /* the gateway's fix for libh2o's TLS reads (src/serve/uvread.c) applies here too: without it the mock drops an HTTP/2
     * connection, with every upstream stream on it, whenever a read fills h2o's buffer exactly */
    if (https_port >= 0 && !pgw_uvread_fix_active())
        fprintf(stderr, "mock-poe: warning: libh2o's TLS reads are not routed through src/serve/uvread.c\n");
    mock_poe_init(api_key);

    h2o_config_init(&server.config);
    server.config.http1.req_timeout = (uint64_t)idle_timeout * 1000;
    server.config.http2.idle_timeout = (uint64_t)idle_timeout * 1000;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&server.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_create_handler(pathconf, sizeof(h2o_handler_t))->on_req = on_req;

    uv_loop_t *loop = uv_default_loop();
    h2o_context_init(&server.ctx, loop, &server.config);
    for (size_t i = 0; i != 2; ++i) {
        server.accept_ctx[i].ctx = &server.ctx;
        server.accept_ctx[i].hosts = server.config.hosts;
    }
    if (http_port >= 0 && (bound_http = start_listener(0, host, http_port)) < 0)
        return 1;
    if (https_port >= 0) {
        server.accept_ctx[1].ssl_ctx = setup_ssl(cert, key);
        if ((bound_https = start_listener(1, host, https_port)) < 0)
            return 1;
    }

    uv_signal_init(loop, &server.sigterm);
    uv_signal_start(&server.sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &server.sigint);
    uv_signal_start(&server.sigint, on_signal, SIGINT);

    printf("mock-poe listening http=%d https=%d\n", bound_http, bound_https);
    fflush(stdout);

    uv_run(loop, UV_RUN_DEFAULT);

    reset_all();
    mock_poe_dispose();
    return 0;
}
