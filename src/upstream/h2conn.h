/* poe-gateway: MIT licence. One HTTP/2 connection over TLS to an upstream host, on a worker's libuv loop. */
#ifndef PGW_UPSTREAM_H2CONN_H
#define PGW_UPSTREAM_H2CONN_H

#include <stdatomic.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <uv.h>
#include "upstream/attempt.h"

typedef struct st_pgw_h2conn_t pgw_h2conn_t;
typedef struct st_pgw_h2stream_t pgw_h2stream_t;

typedef struct st_pgw_h2conn_callbacks_t {
    /** The connection may take more streams than before (it is ready, a stream ended, the server allowed more). */
    void (*on_room)(pgw_h2conn_t *conn);
    /**
     * The connection is closing: it takes no stream any more, and those it carried have ended. `no_h2`: the server did
     * not select h2 by ALPN (the streams it held were handed back with PGW_ATTEMPT_ELSEWHERE). Called once; the
     * connection frees itself afterwards.
     */
    void (*on_close)(pgw_h2conn_t *conn, int no_h2);
    /**
     * The server refused the stream of attempt `a` before answering (REFUSED_STREAM, or above a GOAWAY's last stream id).
     * Returns 1 when the owner sends it again itself (no callback of `a`'s then), 0 to end the attempt as never processed.
     */
    int (*on_refused)(pgw_attempt_t *a);
} pgw_h2conn_callbacks_t;

/** Where a connection goes: the URL's host and port, and whether its certificate is verified. */
typedef struct st_pgw_h2conn_target_t {
    const char *host; /* a name, or an IP address (IPv6 without brackets) */
    const char *port;
    int verify;
} pgw_h2conn_target_t;

/**
 * Opens a connection (resolution, TCP, TLS with ALPN h2 and http/1.1, then the HTTP/2 session) to `target`; `ssl_ctx`
 * holds the trusted CAs. `sockets` counts the connections carrying a stream. Never calls back before it returns.
 */
pgw_h2conn_t *pgw_h2conn_open(uv_loop_t *loop, SSL_CTX *ssl_ctx, const pgw_h2conn_target_t *target,
                              const pgw_h2conn_callbacks_t *cb, void *data, atomic_ullong *sockets);

/** The `data` given to pgw_h2conn_open. */
void *pgw_h2conn_data(pgw_h2conn_t *conn);

/** How many more streams the connection takes now: 0 once it is closing or the server sent GOAWAY. */
size_t pgw_h2conn_room(pgw_h2conn_t *conn);

/** Whether the connection takes no new stream for good (the server sent GOAWAY, or it is closing). */
int pgw_h2conn_draining(pgw_h2conn_t *conn);

/** Closes the connection at once if it carries no stream (the worker lets go of its idle connections). */
void pgw_h2conn_close_idle(pgw_h2conn_t *conn);

/**
 * Sends the attempt `a` on `conn` (once the connection is ready, if it is not yet) to `authority` and `path` (not copied:
 * they must last as long as the stream). `*ref` is set to the stream and reset to NULL when the stream ends (before
 * a->cb->done) or is cancelled. Needs room.
 */
void pgw_h2conn_submit(pgw_h2conn_t *conn, pgw_attempt_t *a, const char *authority, const char *path, pgw_h2stream_t **ref);

/** Ends the stream at once; no callback follows. A stream the server has not ended is reset (CANCEL), at once. */
void pgw_h2stream_cancel(pgw_h2stream_t *st);

/** Delivers the body bytes held since the transfer paused, then lets the server send more. */
void pgw_h2stream_resume(pgw_h2stream_t *st);

/** Whether the whole request body has been taken into DATA frames. */
int pgw_h2stream_body_sent(pgw_h2stream_t *st);

/** Maximum payload of a DATA frame this client sends, so that frame header and payload fit one full TLS record. */
#define PGW_H2CONN_DATA_PAYLOAD_MAX (16384 - 9)

/**
 * Converts "Name: value" request lines to HTTP/2 header fields appended to `nv` (room for at least `cap`), names in lower
 * case in `scratch` (at least as large as the lines together). Skips the fields HTTP/2 forbids, `Name:` lines (curl's
 * way to remove a header) and a value-less line; marks in `*has` which of content-length (1) and accept (2) were given.
 * Returns the number of fields appended.
 */
size_t pgw_h2conn_convert_headers(const struct curl_slist *lines, nghttp2_nv *nv, size_t cap, char *scratch, int *has);

#endif
