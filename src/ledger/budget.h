/* poe-gateway: MIT licence. Budgets: whether a caller, or the team behind an upstream key, may spend more today and this
 * month, from the ledger's running totals (docs/ledger.md#budgets). */
#ifndef PGW_BUDGET_H
#define PGW_BUDGET_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "ledger/store.h"

#define PGW_BUDGET_WARN_AT 0.8 /* the share of a budget past which answers carry x-poe-gateway-budget-remaining */

/** The budget that decided, when one did. */
typedef struct st_pgw_budget_verdict_t {
    int over;         /* a budget is spent: refuse the request */
    int warn;         /* else, a budget is PGW_BUDGET_WARN_AT used or more */
    char who[192];    /* "key alice", "login bob@example.com", "the team (upstream key 1a2b3c4d5e6f)" */
    const char *what; /* "gateway.keys[].budget", "gateway.budgets", "gateway.budget": where it is configured */
    int monthly;      /* the daily (0) or monthly (1) limit */
    int in_points;
    double limit, spent;  /* in the budget's unit */
    int64_t resets_at_ms; /* when the period ends */
} pgw_budget_verdict_t;

/**
 * Checks `caller` (with its gateway.keys entry `key`, or NULL) and the upstream key `upstream` (a fingerprint) against
 * their budgets at `now_ms`. Fills `v` with the spent budget (v->over), else the closest to its end past the warning
 * share (v->warn), else zeroes it. Never blocks on disk.
 */
void pgw_budget_check(pgw_store_t *s, const pgw_config_t *conf, const char *caller, const pgw_key_t *key, const char *upstream,
                      int64_t now_ms, pgw_budget_verdict_t *v);

/** The refusal's message for a spent budget: which budget, how much, when it resets, what to do. */
int pgw_budget_message(const pgw_budget_verdict_t *v, int64_t now_ms, char *buf, size_t bufsz);

/** The x-poe-gateway-budget-remaining value for a warning: "0.93 of 5.00 USD daily (key alice), resets 2026-12-07T00:00:00Z". */
int pgw_budget_remaining(const pgw_budget_verdict_t *v, char *buf, size_t bufsz);

#endif
