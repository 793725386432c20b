/* poe-gateway: MIT licence. The libcurl attempt engine: libcurl's multi interface driven by a worker's libuv loop. */
#ifndef PGW_UPSTREAM_CURL_H
#define PGW_UPSTREAM_CURL_H

#include <uv.h>
#include "upstream/attempt.h"

typedef struct st_pgw_upstream_curl_t pgw_upstream_curl_t;

/**
 * Creates the engine for `loop`. `ca_file` (may be NULL) adds a trusted CA to the system's. `max_host_connections` caps
 * the connections open to one http:// host (https:// hosts, multiplexed over HTTP/2, get 4).
 */
pgw_upstream_curl_t *pgw_upstream_curl_create(uv_loop_t *loop, const char *ca_file, unsigned max_host_connections);

/** The engine's operations, for pgw_attempt_t.engine. */
const pgw_attempt_engine_t *pgw_upstream_curl_engine(pgw_upstream_curl_t *c);

/** Sockets carrying a transfer now; safe to read from any thread. */
unsigned long long pgw_upstream_curl_sockets(pgw_upstream_curl_t *c);

#endif
