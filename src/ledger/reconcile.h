/* poe-gateway: MIT licence. Reconciliation with Poe: the balance and the points Poe billed per day, polled from Poe's
 * usage endpoints (free), so that the gateway's computed cost can be held against what Poe charged
 * (docs/ledger.md#reconciliation). */
#ifndef PGW_RECONCILE_H
#define PGW_RECONCILE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "config/config.h"
#include "upstream/upstream.h"

/** An upstream key's last balance, for /metrics. */
typedef struct st_pgw_reconcile_balance_t {
    char upstream[16]; /* fingerprint */
    long long points;
    int64_t at_ms;
} pgw_reconcile_balance_t;

/**
 * Starts polling, on `loop` with `up` (worker 0 does this once), every upstream key of `conf`'s routes (one per distinct
 * key and host) every conf->reconcile_interval seconds, the first time one interval after the call. Does nothing when
 * the interval is 0 or the process has no ledger. The keys are copied.
 */
void pgw_reconcile_start(uv_loop_t *loop, pgw_upstream_t *up, const pgw_config_t *conf);

/** Copies up to `max` known balances into `out`; returns how many. Any thread. */
size_t pgw_reconcile_balances(pgw_reconcile_balance_t *out, size_t max);

/**
 * Adds one page of /usage/points_history (`json`) to per-day sums from `since_ms` on: `points`, `usd` and `entries`
 * indexed by day - first_day (at most `num_days`). Returns 1 when an older page is wanted (has_more, and every entry of
 * this one is at or after since_ms) with the last query_id in `cursor`, 0 when done, -1 when the page is not what Poe
 * sends.
 */
int pgw_reconcile_history_page(const char *json, size_t len, int64_t since_ms, int64_t first_day, size_t num_days,
                               long long *points, double *usd, long long *entries, char *cursor, size_t cursorsz);

#endif
