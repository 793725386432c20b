/* poe-gateway: MIT licence. A token bucket shared by the workers: it holds a route or a named key to its `rpm`
 * (handlers/messages.c), and it is the rate of an upstream key that the shaper shares out (src/serve/shaper.c).
 *
 * Tokens are counted as a fraction and refilled lazily: each take first adds what the time since the last one earned,
 * up to the capacity. A mutex guards the few instructions of a take, since every worker takes from the same bucket. */
#include "common/ratelimit.h"

void pgw_ratelimit_init_burst(pgw_ratelimit_t *rl, int rpm, int burst, uint64_t now_ms)
{
    pthread_mutex_init(&rl->mutex, NULL);
    rl->per_ms = rpm > 0 ? rpm / 60000.0 : 0;
    rl->capacity = burst > 0 ? burst : rpm > 0 ? rpm : 1;
    rl->tokens = rl->capacity;
    rl->updated_ms = now_ms;
    rl->blocked_until_ms = 0;
    rl->charged = 0;
}

void pgw_ratelimit_init(pgw_ratelimit_t *rl, int rpm, uint64_t now_ms)
{
    pgw_ratelimit_init_burst(rl, rpm, 0, now_ms);
}

void pgw_ratelimit_dispose(pgw_ratelimit_t *rl)
{
    pthread_mutex_destroy(&rl->mutex);
}

uint64_t pgw_ratelimit_take(pgw_ratelimit_t *rl, uint64_t now_ms)
{
    return pgw_ratelimit_take_n(rl, now_ms, 1);
}

/* Adds what the time since the last update earned, up to the capacity. Called with the mutex held. */
static void refill(pgw_ratelimit_t *rl, uint64_t now_ms)
{
    if (now_ms > rl->updated_ms) {
        rl->tokens += (now_ms - rl->updated_ms) * rl->per_ms;
        if (rl->tokens > rl->capacity)
            rl->tokens = rl->capacity;
        rl->updated_ms = now_ms;
    }
}

void pgw_ratelimit_debit(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n)
{
    double need = n < 1 ? 1 : n;
    if (rl->per_ms == 0)
        return;
    pthread_mutex_lock(&rl->mutex);
    refill(rl, now_ms);
    if (need > rl->capacity)
        need = rl->capacity;
    rl->tokens -= need;
    if (rl->tokens < -rl->capacity)
        rl->tokens = -rl->capacity;
    rl->charged = 1;
    pthread_mutex_unlock(&rl->mutex);
}

uint64_t pgw_ratelimit_take_share(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n)
{
    if (rl->per_ms == 0)
        return 0;
    pthread_mutex_lock(&rl->mutex);
    if (rl->charged) {
        refill(rl, now_ms);
        if (rl->tokens > 0)
            rl->tokens = 0;
        rl->charged = 0;
    }
    pthread_mutex_unlock(&rl->mutex);
    return pgw_ratelimit_take_n(rl, now_ms, n);
}

uint64_t pgw_ratelimit_take_n(pgw_ratelimit_t *rl, uint64_t now_ms, unsigned n)
{
    uint64_t wait = 0;
    double need = n < 1 ? 1 : n;
    if (rl->per_ms == 0)
        return 0; /* unlimited; per_ms does not change after init, so it is read without the lock */
    pthread_mutex_lock(&rl->mutex);
    if (now_ms < rl->blocked_until_ms) {
        wait = rl->blocked_until_ms - now_ms;
    } else {
        refill(rl, now_ms);
        if (need > rl->capacity)
            need = rl->capacity;
        if (rl->tokens >= need)
            rl->tokens -= need;
        else
            wait = (uint64_t)((need - rl->tokens) / rl->per_ms) + 1;
    }
    pthread_mutex_unlock(&rl->mutex);
    return wait;
}

void pgw_ratelimit_block(pgw_ratelimit_t *rl, uint64_t until_ms)
{
    pthread_mutex_lock(&rl->mutex);
    if (until_ms > rl->blocked_until_ms)
        rl->blocked_until_ms = until_ms;
    rl->tokens = 0;
    pthread_mutex_unlock(&rl->mutex);
}
