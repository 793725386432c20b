/* poe-gateway: MIT licence. One worker's connection to Redis (gateway.redis): hiredis's async API on the worker's loop,
 * a deadline on every answer, and reconnection, so that a Redis that is down or slow never holds a request. */
#ifndef PGW_REDIS_H
#define PGW_REDIS_H

#include <stdatomic.h>
#include <stddef.h>
#include <uv.h>
#include <hiredis/hiredis.h>
#include "config/config.h"

typedef struct st_pgw_redis_t pgw_redis_t;

/**
 * Called once per command: `reply` is Redis's answer, or NULL when there is none in time (gateway.redis_timeout), the
 * connection broke, or the client is being freed. The reply belongs to hiredis and is valid during the call only.
 */
typedef void (*pgw_redis_cb)(void *data, redisReply *reply);

/**
 * A client for `conf`'s gateway.redis on `loop` (the worker's), which connects at once and again every second while
 * Redis cannot be reached or does not answer; `conf` is read now only. On each connection it authenticates with
 * REDIS_PASSWORD (and REDIS_USERNAME) from the environment, selects the database and loads `scripts` (a NULL-terminated
 * array of Lua texts that live as long as the process) before it counts as up. Returns NULL when gateway.redis is not
 * set.
 */
pgw_redis_t *pgw_redis_create(uv_loop_t *loop, const pgw_config_t *conf, const char *const *scripts);

/** The client made on the calling thread (a worker's), or NULL: for code that reaches Redis without a worker at hand. */
pgw_redis_t *pgw_redis_of_thread(void);

/** 1 while the connection is up and answering in time; 0 while connecting, after a failure or a late answer. */
int pgw_redis_up(pgw_redis_t *r);

/**
 * Sends one command (argv, as redisAsyncCommandArgv takes it). Returns -1 without calling `cb` when the client is not up
 * (the caller decides locally at once); else 0, and `cb` is called exactly once, later, with the reply or NULL. An
 * answer that misses its deadline marks the client down and reconnects it. `cb` may be NULL (nothing to learn).
 */
int pgw_redis_command(pgw_redis_t *r, int argc, const char **argv, const size_t *argvlen, pgw_redis_cb cb, void *data);

/** Writes the SHA-1 of `script` as 40 hex digits and a NUL into `sha` (41 bytes): the name EVALSHA takes. */
void pgw_redis_script_sha(const char *script, char *sha);

/** Redis clients of this process that are not up (for /health/readiness and /metrics): 0 when all are, or without Redis. */
extern atomic_uint pgw_redis_clients_down;

#endif
