/* poe-gateway: MIT licence. LiteLLM's cooldown for one upstream route, shared by the workers: after more than
 * `allowed_fails` failures within a minute, the route rests for `cooldown_time` (docs/config.md#fallbacks). */
#ifndef PGW_COOLDOWN_H
#define PGW_COOLDOWN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define PGW_COOLDOWN_WINDOW_MS 60000 /* failures count within a minute of the first */

typedef struct st_pgw_cooldown_t {
    pthread_mutex_t mutex;    /* held for a few instructions per failure; successes take nothing */
    uint64_t window_start_ms; /* the first failure of the current window */
    unsigned fails;           /* failures in the window */
    atomic_ullong until_ms;   /* resting until then (read without the mutex) */
} pgw_cooldown_t;

void pgw_cooldown_init(pgw_cooldown_t *c);
/** Releases the mutex; no thread may use `c` any more. */
void pgw_cooldown_dispose(pgw_cooldown_t *c);

/**
 * Counts one failure at `now_ms`. When the window's failures exceed `allowed_fails` and `cooldown_ms` is not 0, the
 * route rests until now_ms + cooldown_ms, the count starts again, and 1 is returned (the caller logs it); else 0. A
 * failure more than PGW_COOLDOWN_WINDOW_MS after the window's first starts a new window.
 */
int pgw_cooldown_fail(pgw_cooldown_t *c, int allowed_fails, uint64_t cooldown_ms, uint64_t now_ms);

/** 1 while the route rests at `now_ms`. Any thread, without a lock. */
int pgw_cooldown_active(pgw_cooldown_t *c, uint64_t now_ms);

#endif
