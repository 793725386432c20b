/* poe-gateway: MIT licence. Running totals of spend per spender for the current UTC day and month, in memory, so that a
 * budget check costs a lookup and never a query. A backend fills it from its records at start and adds each new one. */
#ifndef PGW_TALLY_H
#define PGW_TALLY_H

#include <pthread.h>
#include <stdint.h>
#include "ledger/store.h"

typedef struct st_pgw_tally_t pgw_tally_t;

/** A new, empty tally. */
pgw_tally_t *pgw_tally_create(void);
void pgw_tally_destroy(pgw_tally_t *t);

/**
 * Adds `usd` spent by `name` at `at_ms`. Amounts of an earlier day or month than the one the spender's total holds are
 * left out of that total (a later one starts it afresh). Thread-safe.
 */
void pgw_tally_add(pgw_tally_t *t, pgw_spender_t who, const char *name, double usd, int64_t at_ms);

/** USD spent by `name` in the day (`monthly` 0) or month (1) of `now_ms`; 0 for a spender never seen. Thread-safe. */
double pgw_tally_get(pgw_tally_t *t, pgw_spender_t who, const char *name, int monthly, int64_t now_ms);

#endif
