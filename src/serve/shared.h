/* poe-gateway: MIT licence. The state replicas share through Redis: each Poe key's shaped rate with fair lanes, the rpm
 * limits of keys and routes, Poe's 429 pauses, and the count of replicas alive (docs/threading.md#shared-state-across-replicas). */
#ifndef PGW_SHARED_H
#define PGW_SHARED_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "serve/redis.h"

/** The scripts every Redis client loads on each connection (NULL-terminated): give to pgw_redis_create. */
extern const char *const pgw_shared_scripts[];

/** Replicas alive at the last heartbeat answered (at least 1): what a local share divides by while Redis is down. */
extern atomic_uint pgw_shared_replicas;

/** Lanes one shaping decision may name. */
#define PGW_SHARED_MAX_LANES 16

/**
 * The answer to a shaping or limit question: `answered` 0 when Redis gave none (decide locally); else `index` is the
 * lane granted (pgw_shared_shape) or the limit that refused (pgw_shared_limits, 1-based, 0 = all took a token), or -1
 * with `wait_ms` until asking again is worthwhile.
 */
typedef void (*pgw_shared_cb)(void *data, int answered, int index, uint64_t wait_ms);

/**
 * Asks for one request's turn at the Poe key `digest`'s rate, `rpm` a minute with `burst` at once, for one of the
 * caller's `lanes` (developer names, the caller's round-robin order, at most PGW_SHARED_MAX_LANES). Across every
 * replica, the waiting developer served longest ago gets the token (docs/threading.md#shared-state-across-replicas).
 * Returns -1 without calling `cb` when Redis is not up; else `cb` is called once.
 */
int pgw_shared_shape(pgw_redis_t *r, const unsigned char *digest, int rpm, int burst, const char *const *lanes, size_t num_lanes,
                     pgw_shared_cb cb, void *data);

/**
 * Takes one token from each of `n` (1 or 2) rpm limits named `names` (e.g. "key:alice"), all or none, each a minute's
 * worth of `rpms[i]`. Returns -1 without calling `cb` when Redis is not up; else `cb` is called once.
 */
int pgw_shared_limits(pgw_redis_t *r, const char *const *names, const int *rpms, size_t n, pgw_shared_cb cb, void *data);

/** Tells every replica that Poe said to wait `ms` on the key `digest` (its 429): nothing is sent for it before then. */
void pgw_shared_block(pgw_redis_t *r, const unsigned char *digest, uint64_t ms);

/**
 * Starts this process's heartbeat on `loop` (one worker's) with `r`: every second it counts itself alive in Redis and
 * reads how many replicas are (pgw_shared_replicas). A no-op when `r` is NULL.
 */
void pgw_shared_heartbeat_start(uv_loop_t *loop, pgw_redis_t *r);

#endif
