/* poe-gateway: MIT licence. Fair sharing of one Poe key's rate limit: requests beyond the rate wait in per-developer
 * lanes served round-robin, and Poe's own limit signals slow the rate down. */
#ifndef PGW_SHAPER_H
#define PGW_SHAPER_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>
#include "common/ratelimit.h"

/** One upstream key's budget, shared by every worker: its rate, and which key it is. */
typedef struct st_pgw_shaper_bucket_t {
    pgw_ratelimit_t rate;         /* blocked for a while after a 429 or "0 remaining" from Poe */
    unsigned char key_digest[32]; /* which upstream key (its SHA-256; the key itself is not kept) */
} pgw_shaper_bucket_t;

/**
 * `rpm` requests per minute (0 = unlimited), of which `burst` may go at once (0 = a minute's worth, like Poe's own
 * per-minute window); past the burst, requests are spaced at the rate. `key_digest` is left for the caller to fill.
 */
void pgw_shaper_bucket_init(pgw_shaper_bucket_t *b, int rpm, int burst, uint64_t now_ms);
void pgw_shaper_bucket_dispose(pgw_shaper_bucket_t *b);

struct st_pgw_request_t;
typedef struct st_pgw_shaper_t pgw_shaper_t;

/**
 * Called once: `admitted` 1 to go ahead, 0 when the request waited queue_timeout in vain (answer 429), -1 when the
 * shared state is unreachable and gateway.redis_failure is closed (answer 503).
 */
typedef void (*pgw_shaper_cb)(struct st_pgw_request_t *r, int admitted);

/** One per worker; `redis` is the worker's client (NULL without gateway.redis), which must outlive the shaper. */
struct st_pgw_redis_t;
pgw_shaper_t *pgw_shaper_create(uv_loop_t *loop, struct st_pgw_redis_t *redis);

/**
 * Admits the request at once when its bucket has a token and nobody waits, else queues it in the caller's lane (its key
 * name). Lanes are served round-robin, so one developer's burst cannot starve the others. A request that leaves while
 * queued is dropped from its lane; the callback may run before this returns.
 */
void pgw_shaper_admit(pgw_shaper_t *s, pgw_shaper_bucket_t *b, struct st_pgw_request_t *r, double queue_timeout_s,
                      pgw_shaper_cb cb);

/**
 * Reads Poe's answer for limit signals: a 429 (its Retry-After, else 1 s) or a "0 remaining" rate-limit header (until
 * its reset, else 1 s) blocks the bucket, so queued requests wait instead of meeting more 429s.
 */
struct st_pgw_upstream_transfer_t;
void pgw_shaper_observe(pgw_shaper_bucket_t *b, int status, struct st_pgw_upstream_transfer_t *t);

/** Requests waiting in this worker's lanes (for /metrics). */
uint64_t pgw_shaper_queued(pgw_shaper_t *s);

#endif
