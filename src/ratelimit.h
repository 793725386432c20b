/* poe-gateway: MIT licence. A token bucket that holds requests to an `rpm`: one per route and one per named key
 * (gateway.keys), kept in the configuration generation and shared by the workers. */
#ifndef PGW_RATELIMIT_H
#define PGW_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

typedef struct st_pgw_ratelimit_t {
    pthread_mutex_t mutex;
    double capacity;    /* rpm: a full minute's worth may go at once */
    double tokens;
    double per_ms;      /* refill rate */
    uint64_t updated_ms;
} pgw_ratelimit_t;

/** Starts full: a minute's worth may go at once. `rpm` 0 means unlimited: every call then succeeds. */
void pgw_ratelimit_init(pgw_ratelimit_t *rl, int rpm, uint64_t now_ms);
/** Releases the mutex; no thread may use the bucket any more (its generation's last reference is gone). */
void pgw_ratelimit_dispose(pgw_ratelimit_t *rl);

/**
 * Takes one request's token. Returns 0, or the milliseconds until a token is available (the request is refused).
 */
uint64_t pgw_ratelimit_take(pgw_ratelimit_t *rl, uint64_t now_ms);

#endif
