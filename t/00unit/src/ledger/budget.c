/* poe-gateway: MIT licence. Unit tests for src/ledger/budget.c and src/ledger/tally.c (the totals it reads). */
#include "../../../../src/ledger/budget.c"
#include "../../../../src/ledger/tally.c"
#include "../../test.h"

/* A store that only answers `spent`, from a tally. */
struct fake_store {
    pgw_store_t super;
    pgw_tally_t *tally;
};

static double fake_spent(pgw_store_t *s, pgw_spender_t who, const char *name, int monthly, int64_t now_ms)
{
    return pgw_tally_get(((struct fake_store *)s)->tally, who, name, monthly, now_ms);
}

static const pgw_store_ops_t fake_ops = {NULL, fake_spent};

/* 2026-12-06 12:00:00 UTC */
#define NOON 1796558400000LL

static void test_tally(void)
{
    pgw_tally_t *t = pgw_tally_create();
    pgw_tally_add(t, PGW_SPENDER_CALLER, "alice", 1.5, NOON);
    pgw_tally_add(t, PGW_SPENDER_CALLER, "alice", 0.5, NOON + 1000);
    pgw_tally_add(t, PGW_SPENDER_UPSTREAM, "alice", 7, NOON); /* another kind of spender, same name */
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 0, NOON) == 2);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 1, NOON) == 2);
    ok(pgw_tally_get(t, PGW_SPENDER_UPSTREAM, "alice", 0, NOON) == 7);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "bob", 0, NOON) == 0);
    /* the next day: the day's total reads 0, the month's goes on */
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 0, NOON + 86400000) == 0);
    pgw_tally_add(t, PGW_SPENDER_CALLER, "alice", 1, NOON + 86400000);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 0, NOON + 86400000) == 1);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 1, NOON + 86400000) == 3);
    /* a late amount of the day before counts for the month only */
    pgw_tally_add(t, PGW_SPENDER_CALLER, "alice", 10, NOON);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 0, NOON + 86400000) == 1);
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 1, NOON + 86400000) == 13);
    /* a new month */
    ok(pgw_tally_get(t, PGW_SPENDER_CALLER, "alice", 1, NOON + 30LL * 86400000) == 0);
    pgw_tally_destroy(t);
}

static void test_periods(void)
{
    is_int(pgw_ledger_period_start(NOON, 0), NOON - 12 * 3600000LL);
    is_int(pgw_ledger_period_end(NOON, 0), NOON + 12 * 3600000LL);
    is_int(pgw_ledger_period_start(NOON, 1), 1796083200000LL); /* 2026-12-01 */
    is_int(pgw_ledger_period_end(NOON, 1), 1798761600000LL);   /* 2027-01-01 */
    is_int(pgw_ledger_month(NOON) % 12, 11);
}

static void test_check(void)
{
    struct fake_store s = {{&fake_ops}, pgw_tally_create()};
    pgw_config_t conf = {0};
    pgw_key_t alice = {.name = "alice", .budget = {5, 80, 0}};
    pgw_named_budget_t logins[] = {{"bob@example.com", {0, 0.5, 0}}};
    pgw_budget_verdict_t v;
    char msg[512];

    conf.points_per_usd = 1000;
    conf.budgets = logins;
    conf.num_budgets = 1;
    pgw_budget_check(&s.super, &conf, "alice", &alice, "up1", NOON, &v);
    ok(!v.over && !v.warn);
    pgw_tally_add(s.tally, PGW_SPENDER_CALLER, "alice", 4.1, NOON);
    pgw_budget_check(&s.super, &conf, "alice", &alice, "up1", NOON, &v);
    ok(!v.over && v.warn && !v.monthly); /* 82% of the day */
    ok(pgw_budget_remaining(&v, msg, sizeof(msg)) > 0);
    is_str(msg, "0.90 of 5.00 USD daily (key alice), resets 2026-12-07T00:00:00Z");
    pgw_tally_add(s.tally, PGW_SPENDER_CALLER, "alice", 0.9, NOON);
    pgw_budget_check(&s.super, &conf, "alice", &alice, "up1", NOON, &v);
    ok(v.over && !v.monthly && v.limit == 5);
    pgw_budget_message(&v, NOON, msg, sizeof(msg));
    ok(strstr(msg, "key alice has spent 5.00 USD of its daily budget of 5.00 USD") != NULL);
    ok(strstr(msg, "resets at 2026-12-07 00:00 UTC (in 12 h 00 min)") != NULL);
    ok(strstr(msg, "gateway.keys[].budget") != NULL);
    /* the next day the day's budget is free again */
    pgw_budget_check(&s.super, &conf, "alice", &alice, "up1", NOON + 86400000, &v);
    ok(!v.over);

    /* a tailnet login's budget, in gateway.budgets; monthly */
    pgw_tally_add(s.tally, PGW_SPENDER_CALLER, "bob@example.com", 0.6, NOON);
    pgw_budget_check(&s.super, &conf, "bob@example.com", NULL, "up1", NOON, &v);
    ok(v.over && v.monthly);
    ok(strstr(v.who, "login bob@example.com") != NULL);
    ok(strcmp(v.what, "gateway.budgets") == 0);

    /* the team's budget per upstream key, in points */
    conf.team_budget = (pgw_budget_t){1000, 0, 1}; /* 1000 points a day = 1 USD here */
    pgw_budget_check(&s.super, &conf, "carol", NULL, "up1", NOON, &v);
    ok(!v.over && !v.warn);
    pgw_tally_add(s.tally, PGW_SPENDER_UPSTREAM, "up1", 1.0, NOON);
    pgw_budget_check(&s.super, &conf, "carol", NULL, "up1", NOON, &v);
    ok(v.over && v.in_points);
    pgw_budget_message(&v, NOON, msg, sizeof(msg));
    ok(strstr(msg, "the team (upstream key up1) has spent 1000 points of its daily budget of 1000 points") != NULL);
    pgw_budget_check(&s.super, &conf, "carol", NULL, "up2", NOON, &v);
    ok(!v.over); /* another upstream key's team */

    /* no store: nothing is checked */
    pgw_budget_check(NULL, &conf, "carol", NULL, "up1", NOON, &v);
    ok(!v.over && !v.warn);
    pgw_tally_destroy(s.tally);
}

void test_src__budget_c(void)
{
    subtest("tally", test_tally);
    subtest("UTC periods", test_periods);
    subtest("check", test_check);
}
