/* poe-gateway: MIT licence. What a transfer (upstream.c) and the engines that carry its attempts share.
 *
 * A transfer is one logical request across its attempts; an engine sends one attempt at a time and reports what comes
 * back through the attempt's callbacks. Two engines: libcurl's multi interface (upstream_curl.c: http://, h2c, unix
 * sockets, and https:// hosts that do not speak HTTP/2) and the gateway's own HTTP/2 client over TLS (h2conn.c). The
 * engines know nothing of retries, timers or the caller: they are given the request, and call back in this order:
 * engaged (at most once), then for each header block its headers and its end, then body bytes, then done (exactly
 * once, unless the transfer stopped the attempt first). An engine never calls back from inside a call the transfer
 * made to it, except `engaged` from `start`, and `resume`, which may deliver body bytes and end the attempt.
 */
#ifndef PGW_UPSTREAM_ATTEMPT_H
#define PGW_UPSTREAM_ATTEMPT_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <h2o/memory.h>

typedef struct st_pgw_attempt_t pgw_attempt_t;

/** How an attempt ended, as far as the retry policy is concerned. */
typedef enum en_pgw_attempt_result_t {
    PGW_ATTEMPT_OK,              /* the whole response arrived */
    PGW_ATTEMPT_RETRYABLE,       /* failed at the transport level: the request may be sent again */
    PGW_ATTEMPT_NEVER_PROCESSED, /* the server says it did not process the request (REFUSED_STREAM, above GOAWAY) */
    PGW_ATTEMPT_FAILED,          /* failed in a way a retry would not mend (timeout, bad URL, certificate) */
    PGW_ATTEMPT_ELSEWHERE,       /* this engine cannot carry it (the host does not speak HTTP/2): start it again at once,
                                  * on the engine the transfer picks now; not a retry */
} pgw_attempt_result_t;

typedef struct st_pgw_attempt_callbacks_t {
    /** The attempt left the engine's queue: it opened a connection or sent its request (see on_engaged in upstream.c). */
    void (*engaged)(pgw_attempt_t *a);
    /** A response header (the transfer stores its name in lower case). */
    void (*header)(pgw_attempt_t *a, const char *name, size_t name_len, const char *value, size_t value_len);
    /**
     * The end of a header block of `status` (interim ones included); `content_length` is -1 when unknown. Status 0 says
     * instead that the headers given so far are void (a new block begins). Returns 0 to go on, -1 when the attempt is to
     * be aborted (the transfer was cancelled: no callback may follow).
     */
    int (*head)(pgw_attempt_t *a, int status, int64_t content_length);
    /** Response body bytes. Returns 0 when consumed, 1 to pause (the same bytes come again after resume), -1 to abort. */
    int (*body)(pgw_attempt_t *a, const char *bytes, size_t len);
    /** The attempt ended; the engine has let go of it (no callback follows). `errstr` describes a failure. */
    void (*done)(pgw_attempt_t *a, pgw_attempt_result_t result, const char *errstr);
} pgw_attempt_callbacks_t;

/** The request an attempt sends, and the engine's state for it. Owned by the transfer; engines read the request. */
struct st_pgw_attempt_t {
    const pgw_attempt_callbacks_t *cb;
    const struct st_pgw_attempt_engine_t *engine; /* the engine that carries this transfer's attempts */
    void *engine_data;                            /* the engine's state for this transfer, or NULL (owned by the engine) */
    const char *url;
    const char *method;
    h2o_iovec_t body[3];        /* the request body, in parts read in order (not owned) */
    size_t body_len;            /* the parts' total */
    struct curl_slist *headers; /* "Name: value" lines; owned by the transfer (an engine may take it, see release) */
    int ssl_verify;
    int h2c;
    const char *unix_socket;
};

typedef struct st_pgw_attempt_engine_t {
    /** Sends a new attempt of `a`; calls no callback but `engaged` before it returns. */
    void (*start)(pgw_attempt_t *a);
    /**
     * Stops the attempt in flight, if any; no callback follows. `premature`: the response is not complete, and the
     * server must stop producing it (a reset reaches it at once).
     */
    void (*stop)(pgw_attempt_t *a, int premature);
    /** Resumes the delivery of body bytes that `body` paused. */
    void (*resume)(pgw_attempt_t *a);
    /** Whether the attempt in flight has handed all of the request body to the transport. */
    int (*body_sent)(pgw_attempt_t *a);
    /** The transfer ends: frees the engine's state for it (after stop). May take a->headers (setting it to NULL). */
    void (*release)(pgw_attempt_t *a);
} pgw_attempt_engine_t;

#endif
