/* poe-gateway: MIT licence. Reachability of each configured upstream, probed without spending Poe points. */
#ifndef PGW_UPCHECK_H
#define PGW_UPCHECK_H

#include <h2o.h>
#include "config/config.h"
#include "upstream/upstream.h"

#define PGW_UPCHECK_CACHE_MS 30000
#define PGW_UPCHECK_TIMEOUT 5.0

/** One worker's cache of probe results, one entry per distinct api_base. */
typedef struct st_pgw_upcheck_t pgw_upcheck_t;

/**
 * Makes a worker's cache, with an entry for each api_base of `conf`, probing through `upstream`. It lives as long as the
 * worker, which never frees it (a finished worker parks until the process exits, src/serve/worker.c).
 */
pgw_upcheck_t *pgw_upcheck_create(pgw_upstream_t *upstream, const pgw_config_t *conf);

/** Adds entries for the api_bases of `conf` it does not know yet (after a reload). */
void pgw_upcheck_update(pgw_upcheck_t *uc, const pgw_config_t *conf);

/**
 * Answers `req` with the health report once every upstream of `conf` has a result younger than PGW_UPCHECK_CACHE_MS, probing the
 * stale ones (GET {base}/v1/models, which Poe serves without a key). 200 when all are reachable, 503 otherwise; JSON
 * either way.
 */
void pgw_upcheck_respond(pgw_upcheck_t *uc, const pgw_config_t *conf, h2o_req_t *req);

#endif
