/* poe-gateway: MIT licence. The ledger's interface: where finished requests are recorded, summed and checked against
 * budgets. src/ledger/sqlite.c is the one backend today (an embedded SQLite file); a shared one for replicas implements the
 * same operations, and callers never see which (docs/ledger.md#the-store). */
#ifndef PGW_STORE_H
#define PGW_STORE_H

#include <stddef.h>
#include <stdint.h>

/** One finished request, as the ledger keeps it. Fixed-size strings (cut when longer) so that a copy owns itself. */
typedef struct st_pgw_ledger_record_t {
    int64_t at_ms;     /* when the request ended (Unix time, ms) */
    char key[128];     /* the caller: a key's name, "master", or a tailnet login */
    char session[80];  /* x-claude-code-session-id, or "" */
    char route[128];   /* the route's model_name */
    char model[128];   /* the model the client asked for */
    char bot[128];     /* the Poe bot it went to */
    char upstream[16]; /* which Poe key paid: its fingerprint (pgw_key_fingerprint, route->api_key_fp), never the key */
    char kind[12];     /* "anthropic" or "openai" */
    char outcome[16];  /* pgw_outcome_name */
    int status;
    long long input, output, cache_read, cache_write; /* tokens, as the answer reported them */
    uint32_t duration_ms;
    double cost_usd; /* < 0: unknown (no price for the bot) */
} pgw_ledger_record_t;

/** What spends against a budget. */
typedef enum en_pgw_spender_t {
    PGW_SPENDER_CALLER,  /* a key's name or a tailnet login */
    PGW_SPENDER_UPSTREAM /* an upstream (Poe) key, by fingerprint */
} pgw_spender_t;

/** How query rows are grouped. */
typedef enum en_pgw_ledger_group_t {
    PGW_LEDGER_BY_KEY,
    PGW_LEDGER_BY_MODEL, /* the Poe bot */
    PGW_LEDGER_BY_SESSION,
    PGW_LEDGER_BY_DAY,       /* UTC day, YYYY-MM-DD */
    PGW_LEDGER_BY_KEY_MODEL, /* caller, then the client's model name: /usage's JSON */
    PGW_LEDGER_BY_KEY_DAY,   /* caller, then UTC day: the page's chart */
} pgw_ledger_group_t;

typedef struct st_pgw_ledger_query_t {
    int64_t since_ms; /* records that ended at or after this */
    pgw_ledger_group_t by;
    size_t limit; /* 0 = every group */
} pgw_ledger_query_t;

/** One group of a query's answer. The strings live until the callback returns. */
typedef struct st_pgw_ledger_row_t {
    const char *a; /* the group (key, bot, session, day); for two-level groups the first level */
    const char *b; /* the second level, or NULL */
    long long requests, input, output, cache_read, cache_write;
    double cost_usd; /* the known costs, summed */
    int64_t first_ms, last_ms;
} pgw_ledger_row_t;

/** Called once per row, in the query's order; a non-zero return stops the query. */
typedef int (*pgw_ledger_row_cb)(void *ctx, const pgw_ledger_row_t *row);

/** The last balance Poe reported for an upstream key (reconciliation). */
typedef struct st_pgw_poe_balance_t {
    const char *upstream; /* fingerprint */
    long long points;
    int64_t at_ms;
} pgw_poe_balance_t;

/** Poe's figures for one UTC day, summed over upstream keys, as reconciliation stored them. */
typedef struct st_pgw_poe_day_t {
    const char *day; /* YYYY-MM-DD */
    long long points, entries;
    double usd;
} pgw_poe_day_t;

typedef struct st_pgw_store_t pgw_store_t;

typedef struct st_pgw_store_ops_t {
    /** Appends `rec` (copied) and adds its cost to the spenders' totals at once. Never blocks on disk. */
    void (*record)(pgw_store_t *s, const pgw_ledger_record_t *rec);
    /** USD spent by `name` in the UTC day (`monthly` 0) or month (1) of `now_ms`. Never blocks on disk. */
    double (*spent)(pgw_store_t *s, pgw_spender_t who, const char *name, int monthly, int64_t now_ms);
    /** Waits until every record handed to `record` before the call is stored and visible to `query`. */
    void (*flush)(pgw_store_t *s);
    /** Runs `q`, calling `cb` per row (blocking: not on an event loop). Returns 0, or -1 with `err`. */
    int (*query)(pgw_store_t *s, const pgw_ledger_query_t *q, pgw_ledger_row_cb cb, void *ctx, char *err, size_t errsz);
    /** Stores Poe's own figures for an upstream key's UTC day (reconciliation): points billed, USD, entries. */
    void (*note_poe_day)(pgw_store_t *s, const char *upstream, const char *day, long long points, double usd, long long entries);
    /** Stores the last seen Poe balance (points) of an upstream key, by fingerprint. */
    void (*note_balance)(pgw_store_t *s, const char *upstream, long long points, int64_t at_ms);
    /** Calls `cb` for each day of Poe's figures since `since_ms`, oldest first (blocking); returns 0, or -1. */
    int (*poe_days)(pgw_store_t *s, int64_t since_ms, int (*cb)(void *ctx, const pgw_poe_day_t *d), void *ctx);
    /** Calls `cb` for each upstream key's last balance (blocking); returns how many there were, or -1. */
    int (*balances)(pgw_store_t *s, int (*cb)(void *ctx, const pgw_poe_balance_t *b), void *ctx);
    /** Stores what is pending, stops the backend's threads and frees it. */
    void (*close)(pgw_store_t *s);
} pgw_store_ops_t;

struct st_pgw_store_t {
    const pgw_store_ops_t *ops;
};

/** The process's store (set once at start, before the workers run), or NULL when the ledger is off. */
pgw_store_t *pgw_store_get(void);
void pgw_store_set(pgw_store_t *s);

/** The UTC day of `ms` (days since the epoch), and the month (year * 12 + month - 1). */
int64_t pgw_ledger_day(int64_t ms);
int64_t pgw_ledger_month(int64_t ms);
/** When the day (`monthly` 0) or month (1) of `ms` ends, in Unix ms. */
int64_t pgw_ledger_period_end(int64_t ms, int monthly);
/** When the day or month of `ms` began, in Unix ms. */
int64_t pgw_ledger_period_start(int64_t ms, int monthly);

/** Copies `src` (`len` bytes) into the fixed field `dst` of `dstsz` bytes, cut at a UTF-8 character boundary. */
void pgw_ledger_copy(char *dst, size_t dstsz, const char *src, size_t len);

#endif
