/* poe-gateway: MIT licence. A token bucket shared by the workers: it holds a route or a named key to its `rpm`
 * (handlers/messages.c), and it is the rate of an upstream key that the shaper shares out (src/serve/shaper.c). */
#ifndef PGW_RATELIMIT_H
#define PGW_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

typedef struct st_pgw_ratelimit_t {
    pthread_mutex_t mutex; /* held for a few instructions per take */
    double capacity;       /* the burst: how many may go at once */
    double tokens;
    double per_ms; /* refill rate; 0 means unlimited */
    uint64_t updated_ms;
    uint64_t blocked_until_ms; /* pgw_ratelimit_block: nothing is taken before this */
    int charged;               /* pgw_ratelimit_debit ran since the last pgw_ratelimit_take_share */
} pgw_ratelimit_t;

/**
 * A bucket of `rpm` requests a minute, of which `burst` may go at once (0: a minute's worth); past the burst, requests
 * are spaced at the rate. `rpm` 0 means unlimited: every take then succeeds. Dispose with pgw_ratelimit_dispose.
 */
void pgw_ratelimit_init_burst(pgw_ratelimit_t *rl, int rpm, int burst, uint64_t now_ms);
/** pgw_ratelimit_init_burst with a minute's worth of burst, as for a route's or a key's `rpm`. */
void pgw_ratelimit_init(pgw_ratelimit_t *rl, int rpm, uint64_t now_ms);
/** Releases the mutex; no thread may use the bucket any more (its generation's last reference is gone). */
void pgw_ratelimit_dispose(pgw_ratelimit_t *rl);

/**
 * Takes one request's token. Returns 0, or the milliseconds until a token is available (nothing is taken then).
 */
uint64_t pgw_ratelimit_take(pgw_ratelimit_t *rl, uint64_t now_ms);

/**
 * Takes `n` tokens for one request (n >= 1, at most the capacity: more is taken as the capacity), so that the bucket
 * lets 1/n of its rate and burst through: a replica's local share while the shared state is away. Returns as
 * pgw_ratelimit_take.
 */
uint64_t pgw_ratelimit_take_n(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n);

/**
 * Charges `n` tokens for a request another authority admitted (the shared bucket in Redis), even when the bucket holds
 * fewer: it may go down to minus its capacity, and takes then wait until it has refilled. So the bucket knows what
 * went, should it have to decide alone later.
 */
void pgw_ratelimit_debit(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n);

/**
 * pgw_ratelimit_take_n for a replica deciding alone: the first take after a debit first empties what the bucket had
 * saved up (keeping any debt), since the other authority may have spent the burst meanwhile; then it refills at the
 * rate as usual.
 */
uint64_t pgw_ratelimit_take_share(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n);

/**
 * Empties the bucket and takes nothing before `until_ms` (an earlier `until_ms` than a block in force does not shorten
 * it): the upstream said to slow down. A no-op on an unlimited bucket's takes, which always succeed.
 */
void pgw_ratelimit_block(pgw_ratelimit_t *rl, uint64_t until_ms);

#endif
