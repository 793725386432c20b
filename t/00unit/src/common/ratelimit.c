/* poe-gateway: MIT licence. Unit tests for src/common/ratelimit.c. */
#include "../../../../src/common/ratelimit.c"
#include "../../test.h"

static void test_rpm(void)
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

static void test_burst(void)
{
    pgw_ratelimit_t rl;
    uint64_t t = 1000000;

    /* 600 a minute (one per 100 ms), of which 5 at once; the rest spaced at the rate */
    pgw_ratelimit_init_burst(&rl, 600, 5, t);
    int granted = 0;
    for (int i = 0; i != 20; ++i)
        granted += pgw_ratelimit_take(&rl, t) == 0;
    is_int(granted, 5);
    uint64_t wait = pgw_ratelimit_take(&rl, t);
    ok(wait >= 99 && wait <= 101);
    is_int(pgw_ratelimit_take(&rl, t + 101), 0);
    ok(pgw_ratelimit_take(&rl, t + 101) != 0);
    /* idle for a minute: back to the burst, not to a minute's worth */
    granted = 0;
    for (int i = 0; i != 100; ++i)
        granted += pgw_ratelimit_take(&rl, t + 60000) == 0;
    is_int(granted, 5);
    pgw_ratelimit_dispose(&rl);
}

static void test_block(void)
{
    pgw_ratelimit_t rl;
    uint64_t t = 1000000;

    pgw_ratelimit_init_burst(&rl, 600, 5, t);
    /* blocked: nothing goes before the end, whatever the bucket held, and the wait says until when */
    pgw_ratelimit_block(&rl, t + 2000);
    is_int(pgw_ratelimit_take(&rl, t), 2000);
    is_int(pgw_ratelimit_take(&rl, t + 1500), 500);
    /* an earlier end does not shorten the block */
    pgw_ratelimit_block(&rl, t + 1000);
    is_int(pgw_ratelimit_take(&rl, t + 1999), 1);
    /* after it, the bucket refills at the rate again */
    is_int(pgw_ratelimit_take(&rl, t + 2000), 0);
    pgw_ratelimit_dispose(&rl);

    /* an unlimited bucket is never held back */
    pgw_ratelimit_init_burst(&rl, 0, 0, t);
    pgw_ratelimit_block(&rl, t + 2000);
    is_int(pgw_ratelimit_take(&rl, t), 0);
    pgw_ratelimit_dispose(&rl);
}

/* a replica's local share: n tokens a request lets 1/n of the rate and of the burst through */
static void test_take_n(void)
{
    pgw_ratelimit_t rl;
    uint64_t t = 1000000;
    int granted = 0;

    pgw_ratelimit_init_burst(&rl, 600, 6, t);
    while (pgw_ratelimit_take_n(&rl, t, 3) == 0)
        ++granted;
    is_int(granted, 2); /* a third of the burst */
    is_int(pgw_ratelimit_take_n(&rl, t, 3), 301); /* three tokens at 10 a second */
    granted = 0;
    for (uint64_t ms = 1; ms <= 60000; ++ms)
        granted += pgw_ratelimit_take_n(&rl, t + ms, 3) == 0;
    ok(granted >= 199 && granted <= 200); /* a third of the rate (the last one falls on the window's edge) */
    /* more than the capacity is taken as the capacity, so a request still goes now and then */
    ok(pgw_ratelimit_take_n(&rl, t + 120000, 50) == 0);
    pgw_ratelimit_dispose(&rl);
}

/* what Redis granted is charged locally, below zero if need be: the local share resumes from there */
static void test_debit(void)
{
    pgw_ratelimit_t rl;
    uint64_t t = 1000000;

    pgw_ratelimit_init_burst(&rl, 600, 6, t); /* 10 a second, 6 at once */
    for (int i = 0; i != 4; ++i)
        pgw_ratelimit_debit(&rl, t, 3); /* 12 tokens' worth went through Redis: the bucket is at -6 */
    is_int(pgw_ratelimit_take_n(&rl, t, 3), 901); /* 9 tokens to earn before a local request of 3 */
    ok(pgw_ratelimit_take_n(&rl, t + 901, 3) == 0);
    /* never deeper than minus the capacity, however much went elsewhere */
    for (int i = 0; i != 100; ++i)
        pgw_ratelimit_debit(&rl, t + 901, 3);
    is_int(pgw_ratelimit_take_n(&rl, t + 901, 3), 901);
    pgw_ratelimit_dispose(&rl);

    /* deciding alone after Redis: what the bucket saved up is gone (Redis may have spent the burst), its debt stays */
    pgw_ratelimit_init_burst(&rl, 600, 6, t);
    pgw_ratelimit_debit(&rl, t, 3); /* 3 of 6 left */
    is_int(pgw_ratelimit_take_share(&rl, t, 3), 301);
    ok(pgw_ratelimit_take_share(&rl, t + 301, 3) == 0); /* emptied once only: then it refills as usual */
    pgw_ratelimit_debit(&rl, t + 301, 3);               /* in debt: 0.01 - 3 */
    is_int(pgw_ratelimit_take_share(&rl, t + 301, 3), 600);
    pgw_ratelimit_dispose(&rl);
}

void test_src__ratelimit_c(void)
{
    subtest("debit", test_debit);
    subtest("take_n", test_take_n);
    subtest("rpm", test_rpm);
    subtest("burst", test_burst);
    subtest("block", test_block);
}
