/* poe-gateway: MIT licence. The ledger in an embedded SQLite file: one writer thread, batched commits, WAL. */
#ifndef PGW_SQLITE_STORE_H
#define PGW_SQLITE_STORE_H

#include <stddef.h>
#include "config/config.h"
#include "ledger/store.h"

/**
 * Opens (creating it and its directory when needed) the ledger at `path`, prunes it to `retention_days` and
 * `max_bytes`, loads the current day's and month's totals for budgets, and starts its writer thread. Returns the store,
 * or NULL with a message in `err`.
 */
pgw_store_t *pgw_sqlite_store_open(const char *path, unsigned retention_days, size_t max_bytes, char *err, size_t errsz);

/** The ledger's file for `conf`: gateway.ledger.path, else <state_dir>/ledger.sqlite. Returns 0, or -1 when no state
 * directory is known. */
int pgw_sqlite_path(const pgw_config_t *conf, char *buf, size_t bufsz);

/**
 * Runs `q` on the ledger file at `path` without a store (the `usage` subcommand, while the gateway may be writing to it).
 * Returns 0, or -1 with a message in `err` (a missing file is an error that says so).
 */
int pgw_sqlite_query_file(const char *path, const pgw_ledger_query_t *q, pgw_ledger_row_cb cb, void *ctx, char *err, size_t errsz);

/** Calls `cb` for each day of Poe's figures since `since_ms`, oldest first; returns 0, or -1 with `err`. */
int pgw_sqlite_poe_days(const char *path, int64_t since_ms, int (*cb)(void *ctx, const pgw_poe_day_t *d), void *ctx, char *err,
                        size_t errsz);

/** The number of records in the file and its size in bytes, for tests and `usage --json`; -1 on error. */
long long pgw_sqlite_count(const char *path, long long *bytes);

#endif
