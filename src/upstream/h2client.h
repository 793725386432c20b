/* poe-gateway: MIT licence. The gateway's own HTTP/2 client for https:// upstreams: an attempt engine over h2conn.c. */
#ifndef PGW_UPSTREAM_H2CLIENT_H
#define PGW_UPSTREAM_H2CLIENT_H

#include <string.h>
#include <uv.h>
#include "upstream/attempt.h"

typedef struct st_pgw_h2client_t pgw_h2client_t;

/** Creates the engine for `loop`. `ca_file` (may be NULL) adds a trusted CA to the system's. */
pgw_h2client_t *pgw_h2client_create(uv_loop_t *loop, const char *ca_file);

/** The engine's operations, for pgw_attempt_t.engine. */
const pgw_attempt_engine_t *pgw_h2client_engine(pgw_h2client_t *c);

/**
 * Whether this engine carries `a`: an https:// URL with a host and no unix socket, no proxy in the environment, and a
 * host not known to refuse HTTP/2.
 */
int pgw_h2client_accepts(pgw_h2client_t *c, const pgw_attempt_t *a);

/** Connections carrying a stream now; safe to read from any thread. */
unsigned long long pgw_h2client_sockets(pgw_h2client_t *c);

/**
 * Splits an https:// URL into host (brackets of an IPv6 address removed), port (443 by default), authority (as written)
 * and path (with the query; "/" when empty), each written NUL-terminated into `buf` (at least
 * PGW_H2CLIENT_SPLIT_SIZE(url) bytes).
 * Returns 0, or -1 when the URL is not an https:// URL with a host.
 */
#define PGW_H2CLIENT_SPLIT_SIZE(url) (2 * strlen(url) + 16)
int pgw_h2client_split_url(const char *url, char *buf, const char **host, const char **port, const char **authority,
                           const char **path);

#endif
