/* poe-gateway: MIT licence. Unit tests for src/ledger/sqlite.c (and src/ledger/store.c's helpers). */
#include <unistd.h>
#include "../../../../src/ledger/sqlite.c"
#include "../../../../src/ledger/store.c"
#include "../../test.h"

static pgw_ledger_record_t rec(const char *key, const char *model, int64_t at_ms, double cost)
{
    pgw_ledger_record_t r;
    memset(&r, 0, sizeof(r));
    r.at_ms = at_ms;
    pgw_ledger_copy(r.key, sizeof(r.key), key, strlen(key));
    pgw_ledger_copy(r.model, sizeof(r.model), model, strlen(model));
    pgw_ledger_copy(r.bot, sizeof(r.bot), model, strlen(model));
    strcpy(r.upstream, "up1");
    strcpy(r.kind, "anthropic");
    strcpy(r.outcome, "ok");
    r.status = 200;
    r.input = 10;
    r.output = 2;
    r.cost_usd = cost;
    return r;
}

struct seen {
    char text[2048];
};

static int collect(void *ctx, const pgw_ledger_row_t *row)
{
    struct seen *s = ctx;
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof(s->text) - len, "%s/%s:%lld:%.2f;", row->a, row->b != NULL ? row->b : "-", row->requests,
             row->cost_usd);
    return 0;
}

static void test_copy(void)
{
    char buf[6];
    pgw_ledger_copy(buf, sizeof(buf), "abcdefgh", 8);
    is_str(buf, "abcde");
    pgw_ledger_copy(buf, sizeof(buf), "abcd\xc3\xa9", 6); /* é would be cut in two: it goes whole */
    is_str(buf, "abcd");
    pgw_ledger_copy(buf, sizeof(buf), NULL, 3);
    is_str(buf, "");
    char fp[16];
    pgw_key_fingerprint("test-poe-key", fp);
    is_int(strlen(fp), 12);
    ok(strstr(fp, "test") == NULL);
    pgw_key_fingerprint(NULL, fp);
    is_str(fp, "-");
}

static void test_store(void)
{
    char dir[] = "/tmp/pgw-ledger-XXXXXX", path[256], err[256];
    ok(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/sub/ledger.sqlite", dir); /* the directory is made */
    int64_t now = (int64_t)pgw_now_ms();

    pgw_store_t *s = pgw_sqlite_store_open(path, 90, PGW_DEFAULT_LEDGER_MAX_BYTES, err, sizeof(err));
    ok(s != NULL);
    if (s == NULL)
        return;
    pgw_ledger_record_t r = rec("alice", "m1", now, 1.25);
    s->ops->record(s, &r);
    r = rec("alice", "m2", now, 0.25);
    s->ops->record(s, &r);
    r = rec("bob", "m1", now, -1); /* unknown cost */
    s->ops->record(s, &r);
    r = rec("bob", "m1", now - 100LL * 86400000, 9); /* past the retention: pruned at the next open */
    s->ops->record(s, &r);
    /* budgets see the amounts at once, before any commit */
    ok(s->ops->spent(s, PGW_SPENDER_CALLER, "alice", 0, now) == 1.5);
    ok(s->ops->spent(s, PGW_SPENDER_UPSTREAM, "up1", 1, now) == 1.5);

    struct seen seen = {""};
    pgw_ledger_query_t q = {0, PGW_LEDGER_BY_KEY_MODEL, 0};
    ok(s->ops->query(s, &q, collect, &seen, err, sizeof(err)) == 0);
    is_str(seen.text, "alice/m1:1:1.25;alice/m2:1:0.25;bob/m1:2:9.00;");
    memset(&seen, 0, sizeof(seen));
    q = (pgw_ledger_query_t){now - 86400000, PGW_LEDGER_BY_KEY, 0};
    ok(s->ops->query(s, &q, collect, &seen, err, sizeof(err)) == 0);
    is_str(seen.text, "alice/-:2:1.50;bob/-:1:0.00;"); /* by cost, highest first */
    s->ops->close(s);

    /* reopened: the records are there, the day's and month's totals are back, the old record is gone */
    long long bytes;
    char wal[300], shm[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    snprintf(shm, sizeof(shm), "%s-shm", path);
    is_int(pgw_sqlite_count(path, &bytes), 4);
    ok(bytes > 0);
    /* read while no gateway has it open: nothing created that another user would then own */
    ok(access(wal, F_OK) != 0 && access(shm, F_OK) != 0);
    s = pgw_sqlite_store_open(path, 90, PGW_DEFAULT_LEDGER_MAX_BYTES, err, sizeof(err));
    ok(s != NULL);
    if (s == NULL)
        return;
    is_int(pgw_sqlite_count(path, NULL), 3);
    ok(s->ops->spent(s, PGW_SPENDER_CALLER, "alice", 0, now) == 1.5);
    ok(s->ops->spent(s, PGW_SPENDER_CALLER, "alice", 1, now) == 1.5);
    ok(s->ops->spent(s, PGW_SPENDER_CALLER, "bob", 1, now) == 0);
    ok(s->ops->spent(s, PGW_SPENDER_UPSTREAM, "up1", 0, now) == 1.5);
    s->ops->note_poe_day(s, "up1", "2026-12-06", 5000, 0.15, 3);
    s->ops->close(s);

    /* the CLI's way in: a file and a query, no store */
    memset(&seen, 0, sizeof(seen));
    q = (pgw_ledger_query_t){0, PGW_LEDGER_BY_MODEL, 1};
    ok(pgw_sqlite_query_file(path, &q, collect, &seen, err, sizeof(err)) == 0);
    is_str(seen.text, "m1/-:2:1.25;"); /* limit 1 */
    ok(pgw_sqlite_query_file("/nonexistent/ledger.sqlite", &q, collect, &seen, err, sizeof(err)) != 0);
    ok(strstr(err, "no ledger at /nonexistent/ledger.sqlite") != NULL);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ok(system(cmd) == 0);
}

void test_src__sqlite_c(void)
{
    subtest("helpers", test_copy);
    subtest("store", test_store);
}
