/* poe-gateway: MIT licence. Unit tests for src/common/cooldown.c. */
#include "../../../../src/common/cooldown.c"
#include "../../test.h"

static void test_allowed_fails(void)
{
    pgw_cooldown_t c;
    uint64_t t = 1000000;

    pgw_cooldown_init(&c);
    ok(!pgw_cooldown_active(&c, t));
    /* allowed_fails 2: the third failure within a minute starts a rest of 5 s */
    is_int(pgw_cooldown_fail(&c, 2, 5000, t), 0);
    is_int(pgw_cooldown_fail(&c, 2, 5000, t + 1000), 0);
    ok(!pgw_cooldown_active(&c, t + 1000));
    is_int(pgw_cooldown_fail(&c, 2, 5000, t + 2000), 1);
    ok(pgw_cooldown_active(&c, t + 2000));
    ok(pgw_cooldown_active(&c, t + 6999));
    ok(!pgw_cooldown_active(&c, t + 7000));
    /* the count started again */
    is_int(pgw_cooldown_fail(&c, 2, 5000, t + 8000), 0);
    is_int(pgw_cooldown_fail(&c, 2, 5000, t + 8000), 0);
    is_int(pgw_cooldown_fail(&c, 2, 5000, t + 8000), 1);
    pgw_cooldown_dispose(&c);

    /* allowed_fails 0: the first failure rests the route */
    pgw_cooldown_init(&c);
    is_int(pgw_cooldown_fail(&c, 0, 1000, t), 1);
    ok(pgw_cooldown_active(&c, t + 999));
    pgw_cooldown_dispose(&c);
}

static void test_window(void)
{
    pgw_cooldown_t c;
    uint64_t t = 1000000;

    pgw_cooldown_init(&c);
    /* failures more than a minute apart never add up */
    for (int i = 0; i != 10; ++i)
        is_int(pgw_cooldown_fail(&c, 1, 5000, t + (uint64_t)i * PGW_COOLDOWN_WINDOW_MS), 0);
    /* a window counts from its first failure: the second, 59 s later, is in it */
    t += 100 * PGW_COOLDOWN_WINDOW_MS;
    is_int(pgw_cooldown_fail(&c, 1, 5000, t), 0);
    is_int(pgw_cooldown_fail(&c, 1, 5000, t + PGW_COOLDOWN_WINDOW_MS - 1), 1);
    pgw_cooldown_dispose(&c);
}

static void test_never(void)
{
    pgw_cooldown_t c;
    pgw_cooldown_init(&c);
    /* cooldown_time 0: failures are counted, the route never rests */
    for (int i = 0; i != 100; ++i)
        is_int(pgw_cooldown_fail(&c, 0, 0, 1000), 0);
    ok(!pgw_cooldown_active(&c, 1000));
    pgw_cooldown_dispose(&c);
}

void test_src__cooldown_c(void)
{
    subtest("allowed_fails", test_allowed_fails);
    subtest("window", test_window);
    subtest("cooldown_time 0", test_never);
}
