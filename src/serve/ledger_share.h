/* poe-gateway: MIT licence. Every replica's ledger records reach every replica through a Redis stream, so that /usage,
 * `poe-gateway usage`, the usage page and the budgets read the same, whichever replica is asked
 * (docs/ledger.md#several-replicas). */
#ifndef PGW_LEDGER_SHARE_H
#define PGW_LEDGER_SHARE_H

#include <uv.h>
#include "ledger/store.h"
#include "serve/redis.h"

/**
 * Wraps `inner` (the replica's own ledger, which it keeps owning until close) so that every record it is given is also
 * appended to the shared stream, through the calling worker's Redis client (dropped, not queued, while that client is
 * down). `state_path` names a small file where the replica keeps its identity and how far it has read the stream
 * (copied). Returns the store to install with pgw_store_set.
 */
pgw_store_t *pgw_ledger_share_wrap(pgw_store_t *inner, const char *state_path);

/**
 * Starts reading the stream on `loop` (one worker's) with `r`: other replicas' records are added to the inner ledger,
 * where their costs count towards the budgets as this replica's own do. A no-op when `store` is not a wrapped one or
 * `r` is NULL.
 */
void pgw_ledger_share_start(pgw_store_t *store, uv_loop_t *loop, pgw_redis_t *r);

#endif
