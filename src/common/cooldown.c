/* poe-gateway: MIT licence. LiteLLM's cooldown for one upstream route: failures are counted in a window of a minute
 * from the first, and the failure past `allowed_fails` makes the route rest for `cooldown_time`. The count is under a
 * mutex (failures are rare); whether the route rests is one atomic load, since every request for a route with
 * fallbacks asks. */
#include "common/cooldown.h"

void pgw_cooldown_init(pgw_cooldown_t *c)
{
    pthread_mutex_init(&c->mutex, NULL);
    c->window_start_ms = 0;
    c->fails = 0;
    atomic_init(&c->until_ms, 0);
}

void pgw_cooldown_dispose(pgw_cooldown_t *c)
{
    pthread_mutex_destroy(&c->mutex);
}

int pgw_cooldown_fail(pgw_cooldown_t *c, int allowed_fails, uint64_t cooldown_ms, uint64_t now_ms)
{
    int cooled = 0;
    pthread_mutex_lock(&c->mutex);
    if (c->fails == 0 || now_ms - c->window_start_ms >= PGW_COOLDOWN_WINDOW_MS) {
        c->window_start_ms = now_ms;
        c->fails = 0;
    }
    if (++c->fails > (unsigned)allowed_fails && cooldown_ms != 0) {
        atomic_store_explicit(&c->until_ms, now_ms + cooldown_ms, memory_order_relaxed);
        c->fails = 0;
        cooled = 1;
    }
    pthread_mutex_unlock(&c->mutex);
    return cooled;
}

int pgw_cooldown_active(pgw_cooldown_t *c, uint64_t now_ms)
{
    return now_ms < atomic_load_explicit(&c->until_ms, memory_order_relaxed);
}
