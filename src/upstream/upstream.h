/* poe-gateway: MIT licence. HTTP client to Poe: transfers and their retries, over libcurl or the gateway's own HTTP/2 client. */
#ifndef PGW_UPSTREAM_H
#define PGW_UPSTREAM_H

#include <stddef.h>
#include <curl/curl.h>
#include <uv.h>
#include <h2o/memory.h>

/**
 * One per worker, on the worker's loop: libcurl's multi interface (http://, h2c, unix sockets), and for https:// the
 * gateway's own HTTP/2 client (multiplexing, bounded connections per host).
 */
typedef struct st_pgw_upstream_t pgw_upstream_t;

/** One logical request to Poe, across its retries. */
typedef struct st_pgw_upstream_transfer_t pgw_upstream_transfer_t;

typedef enum en_pgw_upstream_error_t {
    PGW_UPSTREAM_OK = 0,
    PGW_UPSTREAM_CONNECT, /* connect, DNS or TLS failure before any response byte */
    PGW_UPSTREAM_TIMEOUT, /* no response head within `timeout` */
    PGW_UPSTREAM_STALL,   /* no byte for `stream_timeout` after the head */
    PGW_UPSTREAM_BROKEN,  /* the response ended before it was complete (reset, cut, protocol error) */
} pgw_upstream_error_t;

typedef struct st_pgw_upstream_callbacks_t {
    /**
     * The final response head: after retries, never for an attempt that is retried. Read headers with
     * pgw_upstream_header. Called at most once.
     */
    void (*on_head)(pgw_upstream_transfer_t *t, int status);
    /**
     * Response body bytes as they arrive. Return 0 when consumed, or 1 to pause the transfer without consuming them: the
     * same bytes come again after pgw_upstream_resume.
     */
    int (*on_body)(pgw_upstream_transfer_t *t, const char *bytes, size_t len);
    /**
     * Exactly once, last, unless the transfer was cancelled. `err` is PGW_UPSTREAM_OK when the whole response arrived;
     * `errstr` describes the failure. The transfer is freed after this returns.
     */
    void (*on_complete)(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr);
} pgw_upstream_callbacks_t;

typedef struct st_pgw_upstream_request_t {
    const char *url;             /* copied */
    const char *method;          /* "GET" or "POST" */
    h2o_iovec_t body;            /* not copied: must stay valid until on_complete or cancel */
    struct curl_slist *headers;  /* taken: freed with the transfer */
    double timeout;              /* seconds to the response head, per attempt, from when it has a connection */
    double stream_timeout;       /* seconds of silence allowed after the head */
    int max_retries;             /* retries of connect failures and 429/500/502/503/529, before any byte is delivered */
    int ssl_verify;              /* 0 turns off certificate verification */
    int h2c;                     /* HTTP/2 with prior knowledge on http:// URLs */
    const char *unix_socket;     /* connect to this unix socket instead of the URL's host (HTTP/1.1), or NULL */
    h2o_iovec_t body_more[2];    /* more of the body, sent after `body` (not copied either): a route can splice a new
                                  * part into a client's body without copying the rest */
} pgw_upstream_request_t;

/** Connections a worker may open to one http:// upstream host when gateway.upstream_connections is not set. */
#define PGW_UPSTREAM_DEFAULT_CONNECTIONS 512

/**
 * Creates the client for `loop`. `ca_file` (may be NULL) adds a trusted CA to the system's. `max_host_connections` caps
 * the connections open to one http:// host at once (0: PGW_UPSTREAM_DEFAULT_CONNECTIONS; https:// hosts, multiplexed
 * over HTTP/2, get 4); past a cap requests wait for a connection, and that wait does not count against their `timeout`.
 * `builtin_h2`: https:// URLs go through the gateway's own HTTP/2 client (h2client.c) instead of libcurl
 * (gateway.upstream_client).
 */
pgw_upstream_t *pgw_upstream_create(uv_loop_t *loop, const char *ca_file, unsigned max_host_connections, int builtin_h2);

/**
 * Starts a transfer; takes req->headers. Never calls a callback before it returns; a malformed URL fails through
 * on_complete like any other connect error.
 */
pgw_upstream_transfer_t *pgw_upstream_start(pgw_upstream_t *up, pgw_upstream_request_t *req, const pgw_upstream_callbacks_t *cb,
                                            void *data);

/** The `data` given to pgw_upstream_start. */
void *pgw_upstream_data(pgw_upstream_transfer_t *t);

/**
 * Stops the transfer at once; no callback follows. Safe from inside this transfer's callbacks.
 */
void pgw_upstream_cancel(pgw_upstream_transfer_t *t);

/** Resumes a transfer that on_body paused. */
void pgw_upstream_resume(pgw_upstream_transfer_t *t);

/**
 * From on_body on: when the whole request body has been sent and no retry can come any more, forgets the body and
 * returns 1; the caller may then free it (a streamed answer can hold a transfer open for minutes). Returns 0 otherwise.
 */
int pgw_upstream_release_body(pgw_upstream_transfer_t *t);

/**
 * Value of a response header of the final attempt (name in lower case), or {NULL, 0}. Valid from on_head until the
 * transfer ends.
 */
h2o_iovec_t pgw_upstream_header(pgw_upstream_transfer_t *t, const char *name, size_t name_len);

/** Calls `cb` for each response header of the final attempt, in arrival order. */
void pgw_upstream_foreach_header(pgw_upstream_transfer_t *t, void (*cb)(void *ctx, h2o_iovec_t name, h2o_iovec_t value),
                                 void *ctx);

/**
 * Appends "name: value" to a header list for pgw_upstream_request_t.headers (a value over 8 KB is dropped).
 */
struct curl_slist *pgw_upstream_add_header(struct curl_slist *list, const char *name, h2o_iovec_t value);

/**
 * Appends what every request to `route` carries: content-type application/json, the route's extra_headers (those whose
 * variable is unset are skipped), no Expect: 100-continue, and Accept-Encoding: identity.
 */
struct st_pgw_route_t;
struct curl_slist *pgw_upstream_add_route_headers(struct curl_slist *list, const struct st_pgw_route_t *route);

/**
 * Attempts retried so far, and connections carrying a transfer now (idle pooled connections are not counted); safe to
 * read from any thread.
 */
unsigned long long pgw_upstream_retries(pgw_upstream_t *up);
unsigned long long pgw_upstream_sockets(pgw_upstream_t *up);

/**
 * Parses a Retry-After value (delta-seconds or an HTTP-date) into milliseconds from now; -1 when absent or malformed.
 */
long pgw_upstream_parse_retry_after(h2o_iovec_t value, time_t now);

/** Delay before retry number `attempt` (1-based): 250 ms doubled each time, with ±25 % jitter, at most 30 s. */
long pgw_upstream_backoff_ms(int attempt);

#endif
