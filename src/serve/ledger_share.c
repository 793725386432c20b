/* poe-gateway: MIT licence. Every replica's ledger records reach every replica through a Redis stream, so that /usage,
 * `poe-gateway usage`, the usage page and the budgets read the same, whichever replica is asked.
 *
 * How it works. Each replica keeps its own SQLite ledger (durable on its own disk, queried by SQL as without Redis) and
 * a wrapper store stands in front of it: record() hands the record to the ledger as before and appends it, fields by
 * name, to the stream `pgw:ledger` (XADD, capped near STREAM_MAX entries) through the calling worker's Redis client,
 * without waiting for the answer. Worker 0 reads the stream every READ_EVERY_MS (XREAD from the last id it has seen) and
 * gives the ledger every record another replica wrote; the ledger's tallies, which the budgets read, count them as
 * they count the replica's own. Each replica is one `origin` (a random id kept with the read position in a small file
 * beside the ledger), so it skips its own records, also after a restart, and resumes where it stopped reading; a new
 * replica reads the stream from its start and so gets the recent history. What the stream dropped (past STREAM_MAX
 * while a replica was away), and records made while a replica's Redis client was down, stay in the one ledger that has
 * them (docs/ledger.md#several-replicas).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/rand.h>
#include <h2o/memory.h>
#include <h2o/string_.h>
#include "common/log.h"
#include "serve/ledger_share.h"

#define MODULE_NAME "ledger"
#define STREAM "pgw:ledger"
#define STREAM_MAX "100000"
#define READ_EVERY_MS 200
#define READ_COUNT "512"

typedef struct st_share_t {
    pgw_store_t super;
    pgw_store_t *inner; /* owned: closed by close */
    char origin[33];    /* this replica's id in the stream */
    char last_id[48];   /* the last stream entry read (worker 0's loop only) */
    char *state_path;   /* origin and last_id, kept across restarts (owned) */
    int reading;        /* an XREAD is in flight */
    uv_timer_t timer;
    pgw_redis_t *redis; /* worker 0's client */
} share_t;

static void on_record(pgw_store_t *s, const pgw_ledger_record_t *rec)
{
    share_t *sh = (share_t *)s;
    sh->inner->ops->record(sh->inner, rec);
    pgw_redis_t *r = pgw_redis_of_thread();
    if (!pgw_redis_up(r))
        return;
    char at[24], status[16], in[24], out[24], cr[24], cw[24], dur[16], cost[32];
    snprintf(at, sizeof(at), "%lld", (long long)rec->at_ms);
    snprintf(status, sizeof(status), "%d", rec->status);
    snprintf(in, sizeof(in), "%lld", rec->input);
    snprintf(out, sizeof(out), "%lld", rec->output);
    snprintf(cr, sizeof(cr), "%lld", rec->cache_read);
    snprintf(cw, sizeof(cw), "%lld", rec->cache_write);
    snprintf(dur, sizeof(dur), "%u", rec->duration_ms);
    snprintf(cost, sizeof(cost), "%.17g", rec->cost_usd);
    const char *argv[] = {
        "XADD",     STREAM,        "MAXLEN",  "~",          STREAM_MAX, "*",          "o",      sh->origin, "at",   at,
        "key",      rec->key,      "session", rec->session, "route",    rec->route,   "model",  rec->model, "bot",  rec->bot,
        "upstream", rec->upstream, "kind",    rec->kind,    "outcome",  rec->outcome, "status", status,     "in",   in,
        "out",      out,           "cr",      cr,           "cw",       cw,           "dur",    dur,        "cost", cost};
    pgw_redis_command(r, sizeof(argv) / sizeof(argv[0]), argv, NULL, NULL, NULL);
}

static double on_spent(pgw_store_t *s, pgw_spender_t who, const char *name, int monthly, int64_t now_ms)
{
    share_t *sh = (share_t *)s;
    return sh->inner->ops->spent(sh->inner, who, name, monthly, now_ms);
}

static void on_flush(pgw_store_t *s)
{
    share_t *sh = (share_t *)s;
    sh->inner->ops->flush(sh->inner);
}

static int on_query(pgw_store_t *s, const pgw_ledger_query_t *q, pgw_ledger_row_cb cb, void *ctx, char *err, size_t errsz)
{
    share_t *sh = (share_t *)s;
    return sh->inner->ops->query(sh->inner, q, cb, ctx, err, errsz);
}

static void on_note_poe_day(pgw_store_t *s, const char *upstream, const char *day, long long points, double usd, long long entries)
{
    share_t *sh = (share_t *)s;
    sh->inner->ops->note_poe_day(sh->inner, upstream, day, points, usd, entries);
}

static void on_note_balance(pgw_store_t *s, const char *upstream, long long points, int64_t at_ms)
{
    share_t *sh = (share_t *)s;
    sh->inner->ops->note_balance(sh->inner, upstream, points, at_ms);
}

static int on_poe_days(pgw_store_t *s, int64_t since_ms, int (*cb)(void *ctx, const pgw_poe_day_t *d), void *ctx)
{
    share_t *sh = (share_t *)s;
    return sh->inner->ops->poe_days(sh->inner, since_ms, cb, ctx);
}

static int on_balances(pgw_store_t *s, int (*cb)(void *ctx, const pgw_poe_balance_t *b), void *ctx)
{
    share_t *sh = (share_t *)s;
    return sh->inner->ops->balances(sh->inner, cb, ctx);
}

static void on_close(pgw_store_t *s)
{
    share_t *sh = (share_t *)s;
    sh->inner->ops->close(sh->inner);
    /* the share itself stays: worker 0's timer may still point at it until the process exits */
}

static const pgw_store_ops_t share_ops = {on_record,       on_spent,    on_flush,    on_query, on_note_poe_day,
                                          on_note_balance, on_poe_days, on_balances, on_close};

/* origin and read position, one line: "<origin> <last id>" */

static void save_state(share_t *sh)
{
    char tmp[4200], line[128];
    snprintf(tmp, sizeof(tmp), "%s.tmp", sh->state_path);
    int n = snprintf(line, sizeof(line), "%s %s\n", sh->origin, sh->last_id);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int ok = write(fd, line, (size_t)n) == n;
    close(fd);
    if (ok)
        rename(tmp, sh->state_path);
}

static void load_state(share_t *sh)
{
    FILE *fp = fopen(sh->state_path, "r");
    char origin[64] = "", last[48] = "";
    if (fp != NULL) {
        if (fscanf(fp, "%32s %47s", origin, last) != 2)
            origin[0] = '\0';
        fclose(fp);
    }
    if (strlen(origin) == 32 && last[0] != '\0') {
        strcpy(sh->origin, origin);
        snprintf(sh->last_id, sizeof(sh->last_id), "%s", last);
        return;
    }
    unsigned char raw[16];
    RAND_bytes(raw, sizeof(raw));
    for (size_t i = 0; i != sizeof(raw); ++i)
        snprintf(sh->origin + i * 2, 3, "%02x", raw[i]);
    strcpy(sh->last_id, "0-0"); /* a new replica: the stream's whole history */
}

pgw_store_t *pgw_ledger_share_wrap(pgw_store_t *inner, const char *state_path)
{
    share_t *sh = h2o_mem_alloc(sizeof(*sh));
    memset(sh, 0, sizeof(*sh));
    sh->super.ops = &share_ops;
    sh->inner = inner;
    sh->state_path = h2o_strdup(NULL, state_path, SIZE_MAX).base;
    load_state(sh);
    return &sh->super;
}

/* reading the stream */

static const char *field(redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1]->str;
    return "";
}

#define COPY(dst, name) pgw_ledger_copy(dst, sizeof(dst), field(f, name), strlen(field(f, name)))

static void on_read(void *data, redisReply *reply)
{
    share_t *sh = data;
    size_t added = 0;
    int moved = 0;
    sh->reading = 0;
    /* [[stream, [[id, [field, value, ...]], ...]]], or nil when nothing is new */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->elements != 2)
        return;
    redisReply *entries = reply->element[0]->element[1];
    for (size_t i = 0; i != entries->elements; ++i) {
        redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        snprintf(sh->last_id, sizeof(sh->last_id), "%s", e->element[0]->str);
        moved = 1;
        redisReply *f = e->element[1];
        if (strcmp(field(f, "o"), sh->origin) == 0)
            continue; /* this replica's own: its ledger has it */
        pgw_ledger_record_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.at_ms = strtoll(field(f, "at"), NULL, 10);
        COPY(rec.key, "key");
        COPY(rec.session, "session");
        COPY(rec.route, "route");
        COPY(rec.model, "model");
        COPY(rec.bot, "bot");
        COPY(rec.upstream, "upstream");
        COPY(rec.kind, "kind");
        COPY(rec.outcome, "outcome");
        rec.status = atoi(field(f, "status"));
        rec.input = strtoll(field(f, "in"), NULL, 10);
        rec.output = strtoll(field(f, "out"), NULL, 10);
        rec.cache_read = strtoll(field(f, "cr"), NULL, 10);
        rec.cache_write = strtoll(field(f, "cw"), NULL, 10);
        rec.duration_ms = (uint32_t)strtoul(field(f, "dur"), NULL, 10);
        rec.cost_usd = *field(f, "cost") != '\0' ? strtod(field(f, "cost"), NULL) : -1;
        sh->inner->ops->record(sh->inner, &rec);
        ++added;
    }
    if (moved)
        save_state(sh);
    if (added != 0)
        pgw_log_debug(MODULE_NAME, "%zu record(s) from other replicas", added);
}

static void on_read_timer(uv_timer_t *t)
{
    share_t *sh = t->data;
    if (sh->reading)
        return;
    const char *argv[] = {"XREAD", "COUNT", READ_COUNT, "STREAMS", STREAM, sh->last_id};
    if (pgw_redis_command(sh->redis, sizeof(argv) / sizeof(argv[0]), argv, NULL, on_read, sh) == 0)
        sh->reading = 1;
}

void pgw_ledger_share_start(pgw_store_t *store, uv_loop_t *loop, pgw_redis_t *r)
{
    if (store == NULL || store->ops != &share_ops || r == NULL)
        return;
    share_t *sh = (share_t *)store;
    sh->redis = r;
    uv_timer_init(loop, &sh->timer);
    sh->timer.data = sh;
    uv_unref((uv_handle_t *)&sh->timer);
    uv_timer_start(&sh->timer, on_read_timer, READ_EVERY_MS, READ_EVERY_MS);
}
