/* poe-gateway: MIT licence. A token bucket that holds requests to an `rpm`: one per route and one per named key
 * (gateway.keys), kept in the configuration generation and shared by the workers. */
#include "ratelimit.h"

void pgw_ratelimit_init(pgw_ratelimit_t *rl, int rpm, uint64_t now_ms)
{
    pthread_mutex_init(&rl->mutex, NULL);
    rl->capacity = rpm;
    rl->tokens = rpm;
    rl->per_ms = rpm / 60000.0;
    rl->updated_ms = now_ms;
}

void pgw_ratelimit_dispose(pgw_ratelimit_t *rl)
{
    pthread_mutex_destroy(&rl->mutex);
}

uint64_t pgw_ratelimit_take(pgw_ratelimit_t *rl, uint64_t now_ms)
{
    uint64_t wait = 0;
    if (rl->capacity == 0)
        return 0;
    pthread_mutex_lock(&rl->mutex);
    if (now_ms > rl->updated_ms) {
        rl->tokens += (now_ms - rl->updated_ms) * rl->per_ms;
        if (rl->tokens > rl->capacity)
            rl->tokens = rl->capacity;
        rl->updated_ms = now_ms;
    }
    if (rl->tokens >= 1) {
        rl->tokens -= 1;
    } else {
        wait = (uint64_t)((1 - rl->tokens) / rl->per_ms) + 1;
    }
    pthread_mutex_unlock(&rl->mutex);
    return wait;
}
