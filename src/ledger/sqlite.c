/* poe-gateway: MIT licence. The ledger in an embedded SQLite file (src/ledger/sqlite.h).
 *
 * How it works. Workers never touch the file. `record` copies the record into a queue under a mutex and adds its cost
 * to the in-memory tally (src/ledger/tally.c: budgets see it at once); it wakes the writer thread only when the queue
 * was empty or has reached BATCH_MAX records, so a request costs no system call. The writer, once woken, gathers
 * records for up to COMMIT_EVERY_MS (or until BATCH_MAX, a flush or the stop), then takes the whole queue, writes it in
 * one transaction and commits: one commit per COMMIT_EVERY_MS at most, however many requests end meanwhile. The database
 * is in WAL mode with synchronous=NORMAL: a commit survives the process being killed (it is in the WAL, in the kernel's
 * page cache), and a power loss may take the last commits. A crash of the process loses the queue: the requests that
 * ended in the last COMMIT_EVERY_MS or so (docs/ledger.md#durability measures it).
 *
 * Readers (the `usage` subcommand, /usage, budgets at start) use their own connections: WAL lets them read while the
 * writer writes. `flush` waits for the writer to have committed every record queued before it, so that /usage shows
 * the request that just ended.
 *
 * Size: the writer deletes records older than the retention at start and every hour, and when the file outgrows
 * max_bytes it deletes the oldest tenth of the records; auto_vacuum=incremental gives the pages back to the file system.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include <h2o/memory.h>
#include "common/clock.h"
#include "common/log.h"
#include "config/masterkey.h"
#include "ledger/sqlite.h"
#include "ledger/tally.h"

#define MODULE_NAME "ledger"
#define MAX_QUEUE 200000 /* records waiting for the writer; past this (a stalled disk) new ones are dropped */
#define PRUNE_EVERY_MS (3600 * 1000)
#define COMMIT_EVERY_MS 100 /* how long the writer gathers a batch: what a crash may lose, at most */
#define BATCH_MAX 4096      /* a batch this big is written at once */

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    " id INTEGER PRIMARY KEY, at_ms INTEGER NOT NULL, key TEXT NOT NULL, session TEXT NOT NULL, route TEXT NOT NULL,"
    " model TEXT NOT NULL, bot TEXT NOT NULL, upstream TEXT NOT NULL, kind TEXT NOT NULL, status INTEGER NOT NULL,"
    " outcome TEXT NOT NULL, input INTEGER NOT NULL, output INTEGER NOT NULL, cache_read INTEGER NOT NULL,"
    " cache_write INTEGER NOT NULL, duration_ms INTEGER NOT NULL, cost_usd REAL);"
    "CREATE INDEX IF NOT EXISTS requests_at ON requests (at_ms);"
    "CREATE TABLE IF NOT EXISTS poe_days (upstream TEXT NOT NULL, day TEXT NOT NULL, points INTEGER NOT NULL,"
    " usd REAL NOT NULL, entries INTEGER NOT NULL, updated_ms INTEGER NOT NULL, PRIMARY KEY (upstream, day));"
    "CREATE TABLE IF NOT EXISTS poe_balance (upstream TEXT PRIMARY KEY, points INTEGER NOT NULL, at_ms INTEGER NOT NULL);";

typedef struct st_sqlite_store_t {
    pgw_store_t super;
    char *path;
    unsigned retention_days;
    size_t max_bytes;
    pgw_tally_t *tally;
    sqlite3 *db; /* the writer's connection: used by the writer thread only once it runs */
    pthread_t thread;
    pthread_mutex_t mutex; /* guards what follows */
    pthread_cond_t wake;   /* the writer: records arrived, or stop */
    pthread_cond_t done;   /* flush: a batch was committed */
    pgw_ledger_record_t *queue;
    size_t num_queued, capacity;
    uint64_t queued_seq, committed_seq; /* records handed over / stored, since start */
    uint64_t dropped;
    uint64_t commits; /* batches written since start (the writer's own) */
    int flush_wanted; /* a reader waits: commit what is queued now */
    int stopping;
} sqlite_store_t;

static int exec(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, errsz, "%s", msg != NULL ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

/* Opens a connection; `create` for the writer (the file and the schema), else an existing file only. */
static sqlite3 *open_db(const char *path, int create, char *err, size_t errsz)
{
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        snprintf(err, errsz, "cannot open the ledger %s: %s", path, db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    if (create) {
        /* auto_vacuum must be chosen before the first table exists; WAL and NORMAL are explained at the top */
        if (exec(db, "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", err, errsz) != 0 ||
            exec(db, schema, err, errsz) != 0) {
            sqlite3_close(db);
            return NULL;
        }
    }
    return db;
}

/*
 * A connection for reading. While the gateway runs, its writer keeps the -wal and -shm files, and a reader joins them.
 * When it does not, opening the file the ordinary way would create them, owned by whoever reads (root running `usage`
 * beside a service user): the gateway could not open its own ledger afterwards. So without a -wal file the file is
 * opened immutable, which creates nothing.
 */
static sqlite3 *open_reader(const char *path, char *err, size_t errsz)
{
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    if (access(wal, F_OK) == 0)
        return open_db(path, 0, err, errsz);
    char uri[8400], *p = uri + sprintf(uri, "file:");
    for (const unsigned char *c = (const unsigned char *)path; *c != '\0' && p < uri + sizeof(uri) - 32; ++c)
        p += isalnum(*c) || strchr("/-_.~", *c) != NULL ? sprintf(p, "%c", *c) : sprintf(p, "%%%02X", *c);
    strcpy(p, "?immutable=1");
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        snprintf(err, errsz, "cannot open the ledger %s: %s", path, db != NULL ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

/* Creates the directory of `path` (one level, 0700) when it is missing. */
static void make_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno == ENOENT) {
        make_parent(dir);
        mkdir(dir, 0700);
    }
}

static long long file_bytes(sqlite3 *db)
{
    long long size = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()", -1, &st, NULL) ==
        SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            size = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    return size;
}

/* Deletes what is past the retention, then the oldest tenth of the records while the file is over max_bytes. */
static void prune(sqlite_store_t *s, int64_t now_ms)
{
    char sql[256], err[256];
    int64_t cutoff = now_ms - (int64_t)s->retention_days * 86400000;
    snprintf(sql, sizeof(sql), "DELETE FROM requests WHERE at_ms < %lld; DELETE FROM poe_days WHERE updated_ms < %lld;",
             (long long)cutoff, (long long)cutoff);
    if (exec(s->db, sql, err, sizeof(err)) != 0)
        pgw_log_warn(MODULE_NAME, "pruning %s: %s", s->path, err);
    exec(s->db, "PRAGMA incremental_vacuum;", err, sizeof(err));
    for (int round = 0; round != 10 && (size_t)file_bytes(s->db) > s->max_bytes; ++round) {
        exec(s->db,
             "DELETE FROM requests WHERE id <= (SELECT MIN(id) + (MAX(id) - MIN(id)) / 10 FROM requests);"
             "PRAGMA incremental_vacuum;",
             err, sizeof(err));
        if (round == 0)
            pgw_log_warn(MODULE_NAME, "%s is over gateway.ledger.max_bytes (%zu): deleting its oldest records", s->path,
                         s->max_bytes);
    }
    exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE);", err, sizeof(err));
}

/* Adds this day's and this month's spend of every caller and upstream key to the tally. */
static int load_tally(sqlite_store_t *s, int64_t now_ms, char *err, size_t errsz)
{
    static const char *const sql[] = {
        "SELECT key, SUM(cost_usd), MAX(at_ms) FROM requests WHERE at_ms >= ?1 AND at_ms < ?2 AND cost_usd > 0 GROUP BY key",
        "SELECT upstream, SUM(cost_usd), MAX(at_ms) FROM requests WHERE at_ms >= ?1 AND at_ms < ?2 AND cost_usd > 0 GROUP BY "
        "upstream"};
    /* the month's total and the day's: the day is added from its own records, the rest of the month as one amount */
    int64_t day_start = pgw_ledger_period_start(now_ms, 0), month_start = pgw_ledger_period_start(now_ms, 1);
    for (int who = 0; who != 2; ++who) {
        for (int part = 0; part != 2; ++part) {
            sqlite3_stmt *st;
            if (sqlite3_prepare_v2(s->db, sql[who], -1, &st, NULL) != SQLITE_OK) {
                snprintf(err, errsz, "%s", sqlite3_errmsg(s->db));
                return -1;
            }
            int64_t from = part == 0 ? month_start : day_start, to = part == 0 ? day_start : INT64_MAX;
            if (from > to)
                from = to;
            sqlite3_bind_int64(st, 1, from);
            sqlite3_bind_int64(st, 2, to);
            while (sqlite3_step(st) == SQLITE_ROW) {
                const char *name = (const char *)sqlite3_column_text(st, 0);
                /* the month-before-today part is counted as spent at the month's start: the month's, not the day's */
                pgw_tally_add(s->tally, who == 0 ? PGW_SPENDER_CALLER : PGW_SPENDER_UPSTREAM, name != NULL ? name : "",
                              sqlite3_column_double(st, 1), part == 0 ? month_start : sqlite3_column_int64(st, 2));
            }
            sqlite3_finalize(st);
        }
    }
    return 0;
}

static int write_batch(sqlite_store_t *s, const pgw_ledger_record_t *recs, size_t n)
{
    static const char sql[] = "INSERT INTO requests (at_ms, key, session, route, model, bot, upstream, kind, status, outcome,"
                              " input, output, cache_read, cache_write, duration_ms, cost_usd)"
                              " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    char err[256];
    sqlite3_stmt *st;
    if (exec(s->db, "BEGIN", err, sizeof(err)) != 0 || sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        pgw_log_error(MODULE_NAME, "cannot write to %s: %s", s->path, sqlite3_errmsg(s->db));
        exec(s->db, "ROLLBACK", err, sizeof(err));
        return -1;
    }
    for (size_t i = 0; i != n; ++i) {
        const pgw_ledger_record_t *r = recs + i;
        int c = 0;
        sqlite3_bind_int64(st, ++c, r->at_ms);
        sqlite3_bind_text(st, ++c, r->key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->session, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->route, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->model, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->bot, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->upstream, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, ++c, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, ++c, r->status);
        sqlite3_bind_text(st, ++c, r->outcome, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, ++c, r->input);
        sqlite3_bind_int64(st, ++c, r->output);
        sqlite3_bind_int64(st, ++c, r->cache_read);
        sqlite3_bind_int64(st, ++c, r->cache_write);
        sqlite3_bind_int64(st, ++c, r->duration_ms);
        if (r->cost_usd >= 0)
            sqlite3_bind_double(st, ++c, r->cost_usd);
        else
            sqlite3_bind_null(st, ++c);
        if (sqlite3_step(st) != SQLITE_DONE)
            pgw_log_error(MODULE_NAME, "cannot write to %s: %s", s->path, sqlite3_errmsg(s->db));
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (exec(s->db, "COMMIT", err, sizeof(err)) != 0) {
        pgw_log_error(MODULE_NAME, "cannot commit to %s: %s", s->path, err);
        exec(s->db, "ROLLBACK", err, sizeof(err));
        return -1;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    sqlite_store_t *s = arg;
    pgw_ledger_record_t *batch = NULL;
    size_t batch_capacity = 0;
    uint64_t last_prune = pgw_now_ms();

    pthread_mutex_lock(&s->mutex);
    for (;;) {
        struct timespec until;
        while (s->num_queued == 0 && !s->stopping) {
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += 60;
            pthread_cond_timedwait(&s->wake, &s->mutex, &until);
            if (s->num_queued == 0 && pgw_now_ms() - last_prune >= PRUNE_EVERY_MS)
                break;
        }
        if (s->num_queued == 0 && s->stopping)
            break;
        /* gather a batch: COMMIT_EVERY_MS from the first record, unless it fills, a reader waits or the gateway stops */
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += COMMIT_EVERY_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
        }
        while (s->num_queued != 0 && s->num_queued < BATCH_MAX && !s->flush_wanted && !s->stopping &&
               pthread_cond_timedwait(&s->wake, &s->mutex, &until) == 0)
            ;
        s->flush_wanted = 0;
        /* swap the queue for the (empty) batch buffer: workers go on queueing while the batch is written */
        pgw_ledger_record_t *recs = s->queue;
        size_t n = s->num_queued, recs_capacity = s->capacity;
        uint64_t seq = s->queued_seq;
        s->queue = batch;
        s->capacity = batch_capacity;
        s->num_queued = 0;
        batch = recs;
        batch_capacity = recs_capacity;
        pthread_mutex_unlock(&s->mutex);

        if (n != 0 && write_batch(s, batch, n) == 0)
            ++s->commits;
        if (pgw_now_ms() - last_prune >= PRUNE_EVERY_MS) {
            last_prune = pgw_now_ms();
            prune(s, (int64_t)pgw_now_ms());
        }

        pthread_mutex_lock(&s->mutex);
        s->committed_seq = seq;
        pthread_cond_broadcast(&s->done);
    }
    s->committed_seq = s->queued_seq;
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->mutex);
    free(batch);
    return NULL;
}

static void store_record(pgw_store_t *_s, const pgw_ledger_record_t *rec)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    if (rec->cost_usd > 0) {
        pgw_tally_add(s->tally, PGW_SPENDER_CALLER, rec->key, rec->cost_usd, rec->at_ms);
        pgw_tally_add(s->tally, PGW_SPENDER_UPSTREAM, rec->upstream, rec->cost_usd, rec->at_ms);
    }
    pthread_mutex_lock(&s->mutex);
    if (s->num_queued == MAX_QUEUE) {
        if (s->dropped++ % 10000 == 0)
            pgw_log_error(MODULE_NAME, "the ledger's writer is behind by %d records (a stalled disk?): records are dropped",
                          MAX_QUEUE);
        pthread_mutex_unlock(&s->mutex);
        return;
    }
    if (s->num_queued == s->capacity) {
        s->capacity = s->capacity == 0 ? 64 : s->capacity * 2;
        s->queue = h2o_mem_realloc(s->queue, s->capacity * sizeof(s->queue[0]));
    }
    s->queue[s->num_queued++] = *rec;
    ++s->queued_seq;
    if (s->num_queued == 1 || s->num_queued == BATCH_MAX)
        pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mutex);
}

static double store_spent(pgw_store_t *_s, pgw_spender_t who, const char *name, int monthly, int64_t now_ms)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    return pgw_tally_get(s->tally, who, name, monthly, now_ms);
}

static void store_flush(pgw_store_t *_s)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    pthread_mutex_lock(&s->mutex);
    uint64_t want = s->queued_seq;
    while (s->committed_seq < want) {
        s->flush_wanted = 1;
        pthread_cond_signal(&s->wake);
        pthread_cond_wait(&s->done, &s->mutex);
    }
    pthread_mutex_unlock(&s->mutex);
}

static int store_query(pgw_store_t *_s, const pgw_ledger_query_t *q, pgw_ledger_row_cb cb, void *ctx, char *err, size_t errsz)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    store_flush(_s);
    return pgw_sqlite_query_file(s->path, q, cb, ctx, err, errsz);
}

/* A statement on its own connection, for the rare writes that come from elsewhere than the writer (reconciliation):
 * ?1 text, ?2 a, ?3 b, ?4 c, ?5 now, ?6 text2. */
static void exec_bound(sqlite_store_t *s, const char *sql, const char *text, long long a, double b, long long c, const char *text2)
{
    char err[256];
    sqlite3 *db = open_db(s->path, 0, err, sizeof(err));
    sqlite3_stmt *st;
    if (db == NULL) {
        pgw_log_warn(MODULE_NAME, "%s", err);
        return;
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, a);
        sqlite3_bind_double(st, 3, b);
        sqlite3_bind_int64(st, 4, c);
        sqlite3_bind_int64(st, 5, (int64_t)pgw_now_ms());
        sqlite3_bind_text(st, 6, text2, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            pgw_log_warn(MODULE_NAME, "%s: %s", s->path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
}

static void store_note_poe_day(pgw_store_t *_s, const char *upstream, const char *day, long long points, double usd,
                               long long entries)
{
    exec_bound((sqlite_store_t *)_s,
               "INSERT OR REPLACE INTO poe_days (upstream, day, points, usd, entries, updated_ms) VALUES (?6, ?1, ?2, ?3, ?4, ?5)",
               day, points, usd, entries, upstream);
}

static void store_note_balance(pgw_store_t *_s, const char *upstream, long long points, int64_t at_ms)
{
    exec_bound((sqlite_store_t *)_s, "INSERT OR REPLACE INTO poe_balance (upstream, points, at_ms) VALUES (?1, ?2, ?4)", upstream,
               points, 0, at_ms, NULL);
}

static int store_poe_days(pgw_store_t *_s, int64_t since_ms, int (*cb)(void *ctx, const pgw_poe_day_t *d), void *ctx)
{
    char err[256];
    return pgw_sqlite_poe_days(((sqlite_store_t *)_s)->path, since_ms, cb, ctx, err, sizeof(err));
}

static int store_balances(pgw_store_t *_s, int (*cb)(void *ctx, const pgw_poe_balance_t *b), void *ctx)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    char err[256];
    sqlite3 *db = open_db(s->path, 0, err, sizeof(err));
    sqlite3_stmt *st;
    int n = -1;
    if (db == NULL)
        return -1;
    if (sqlite3_prepare_v2(db, "SELECT upstream, points, at_ms FROM poe_balance ORDER BY upstream", -1, &st, NULL) == SQLITE_OK) {
        n = 0;
        while (sqlite3_step(st) == SQLITE_ROW) {
            pgw_poe_balance_t b = {(const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
                                   sqlite3_column_int64(st, 2)};
            ++n;
            if (cb(ctx, &b) != 0)
                break;
        }
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
}

static void store_close(pgw_store_t *_s)
{
    sqlite_store_t *s = (sqlite_store_t *)_s;
    pthread_mutex_lock(&s->mutex);
    s->stopping = 1;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->mutex);
    pthread_join(s->thread, NULL);
    pgw_log_info(MODULE_NAME, "%s: %llu records written in %llu commits since start%s", s->path,
                 (unsigned long long)s->committed_seq, (unsigned long long)s->commits, s->dropped != 0 ? " (some dropped)" : "");
    sqlite3_close(s->db);
    pgw_tally_destroy(s->tally);
    pthread_mutex_destroy(&s->mutex);
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->done);
    free(s->queue);
    free(s->path);
    free(s);
}

static const pgw_store_ops_t sqlite_ops = {store_record,       store_spent,    store_flush,    store_query, store_note_poe_day,
                                           store_note_balance, store_poe_days, store_balances, store_close};

pgw_store_t *pgw_sqlite_store_open(const char *path, unsigned retention_days, size_t max_bytes, char *err, size_t errsz)
{
    make_parent(path);
    sqlite3 *db = open_db(path, 1, err, errsz);
    if (db == NULL)
        return NULL;
    sqlite_store_t *s = h2o_mem_alloc(sizeof(*s));
    memset(s, 0, sizeof(*s));
    s->super.ops = &sqlite_ops;
    s->path = strdup(path);
    s->retention_days = retention_days;
    s->max_bytes = max_bytes;
    s->tally = pgw_tally_create();
    s->db = db;
    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->done, NULL);
    int64_t now = (int64_t)pgw_now_ms();
    prune(s, now);
    if (load_tally(s, now, err, errsz) != 0) {
        s->stopping = 1;
        sqlite3_close(s->db);
        pgw_tally_destroy(s->tally);
        free(s->path);
        free(s);
        return NULL;
    }
    pthread_create(&s->thread, NULL, writer_main, s);
    return &s->super;
}

int pgw_sqlite_query_file(const char *path, const pgw_ledger_query_t *q, pgw_ledger_row_cb cb, void *ctx, char *err, size_t errsz)
{
    static const char day[] = "strftime('%Y-%m-%d', at_ms / 1000, 'unixepoch')";
    const char *a, *b = NULL, *order;
    char sql[1024];
    struct stat st_buf;

    switch (q->by) {
    case PGW_LEDGER_BY_KEY:
        a = "key";
        order = "cost DESC, n DESC, a";
        break;
    case PGW_LEDGER_BY_MODEL:
        a = "bot";
        order = "cost DESC, n DESC, a";
        break;
    case PGW_LEDGER_BY_SESSION:
        a = "CASE session WHEN '' THEN '-' ELSE session END";
        order = "cost DESC, n DESC, a";
        break;
    case PGW_LEDGER_BY_DAY:
        a = day;
        order = "a";
        break;
    case PGW_LEDGER_BY_KEY_MODEL:
        a = "key";
        b = "model";
        order = "a, b";
        break;
    case PGW_LEDGER_BY_KEY_DAY:
        a = "key";
        b = day;
        order = "a, b";
        break;
    default:
        snprintf(err, errsz, "unknown grouping");
        return -1;
    }
    snprintf(sql, sizeof(sql),
             "SELECT %s AS a, %s AS b, COUNT(*) AS n, SUM(input), SUM(output), SUM(cache_read), SUM(cache_write),"
             " TOTAL(cost_usd) AS cost, MIN(at_ms), MAX(at_ms) FROM requests WHERE at_ms >= ?1 GROUP BY a, b ORDER BY %s",
             a, b != NULL ? b : "NULL", order);
    if (q->limit != 0)
        snprintf(sql + strlen(sql), sizeof(sql) - strlen(sql), " LIMIT %zu", q->limit);

    if (stat(path, &st_buf) != 0) {
        snprintf(err, errsz, "no ledger at %s (the gateway creates it when it starts with gateway.ledger enabled)", path);
        return -1;
    }
    sqlite3 *db = open_reader(path, err, errsz);
    if (db == NULL)
        return -1;
    sqlite3_stmt *st;
    int ret = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errsz, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_bind_int64(st, 1, q->since_ms);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        pgw_ledger_row_t row = {(const char *)sqlite3_column_text(st, 0),
                                b != NULL ? (const char *)sqlite3_column_text(st, 1) : NULL,
                                sqlite3_column_int64(st, 2),
                                sqlite3_column_int64(st, 3),
                                sqlite3_column_int64(st, 4),
                                sqlite3_column_int64(st, 5),
                                sqlite3_column_int64(st, 6),
                                sqlite3_column_double(st, 7),
                                sqlite3_column_int64(st, 8),
                                sqlite3_column_int64(st, 9)};
        if (row.a == NULL)
            row.a = "";
        if (cb(ctx, &row) != 0)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        snprintf(err, errsz, "%s: %s", path, sqlite3_errmsg(db));
        ret = -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ret;
}

int pgw_sqlite_poe_days(const char *path, int64_t since_ms, int (*cb)(void *ctx, const pgw_poe_day_t *d), void *ctx, char *err,
                        size_t errsz)
{
    char since[16];
    time_t t = (time_t)(since_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(since, sizeof(since), "%Y-%m-%d", &tm);
    sqlite3 *db = open_reader(path, err, errsz);
    if (db == NULL)
        return -1;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(
            db, "SELECT day, SUM(points), SUM(usd), SUM(entries) FROM poe_days WHERE day >= ?1 GROUP BY day ORDER BY day", -1, &st,
            NULL) != SQLITE_OK) {
        snprintf(err, errsz, "%s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -1;
    }
    sqlite3_bind_text(st, 1, since, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        pgw_poe_day_t d = {(const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 3),
                           sqlite3_column_double(st, 2)};
        if (cb(ctx, &d) != 0)
            break;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return 0;
}

long long pgw_sqlite_count(const char *path, long long *bytes)
{
    char err[256];
    long long n = -1;
    sqlite3 *db = open_reader(path, err, sizeof(err));
    sqlite3_stmt *st;
    if (db == NULL)
        return -1;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM requests", -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    if (bytes != NULL)
        *bytes = file_bytes(db);
    sqlite3_close(db);
    return n;
}

int pgw_sqlite_path(const pgw_config_t *conf, char *buf, size_t bufsz)
{
    char dir[4096];
    if (conf->ledger_path != NULL)
        return snprintf(buf, bufsz, "%s", conf->ledger_path) < (int)bufsz ? 0 : -1;
    if (pgw_state_dir(conf, dir, sizeof(dir)) != 0)
        return -1;
    return snprintf(buf, bufsz, "%s/ledger.sqlite", dir) < (int)bufsz ? 0 : -1;
}
