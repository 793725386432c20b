/* poe-gateway: MIT licence. Unit tests for src/ratelimit.c. */
#include "../../../src/ratelimit.c"
#include "../test.h"

void test_src__ratelimit_c(void)
{
    pgw_ratelimit_t rl;
    uint64_t t = 1000000;

    pgw_ratelimit_init(&rl, 0, t);
    for (int i = 0; i != 10000; ++i)
        if (pgw_ratelimit_take(&rl, t) != 0)
            break;
    ok(pgw_ratelimit_take(&rl, t) == 0); /* unlimited */
    pgw_ratelimit_dispose(&rl);

    pgw_ratelimit_init(&rl, 60, t); /* one per second, a burst of 60 */
    int granted = 0;
    for (int i = 0; i != 100; ++i)
        granted += pgw_ratelimit_take(&rl, t) == 0;
    is_int(granted, 60);
    uint64_t wait = pgw_ratelimit_take(&rl, t);
    ok(wait >= 999 && wait <= 1001);
    is_int(pgw_ratelimit_take(&rl, t + 500) != 0, 1);
    is_int(pgw_ratelimit_take(&rl, t + 1001), 0);
    ok(pgw_ratelimit_take(&rl, t + 1001) != 0);
    /* a long idle spell refills to the burst size, not beyond */
    granted = 0;
    for (int i = 0; i != 100; ++i)
        granted += pgw_ratelimit_take(&rl, t + 3600000) == 0;
    is_int(granted, 60);
    pgw_ratelimit_dispose(&rl);
}
