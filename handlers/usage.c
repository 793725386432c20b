/* poe-gateway: MIT licence. GET /usage: who spent what, from the ledger (docs/ledger.md#looking-at-it).
 *
 * How it works. The answer is read from the ledger's SQLite file, which may take milliseconds: too long for the worker's
 * loop, where other developers' streams wait. So the handler makes a job for libuv's thread pool: the job flushes the
 * ledger's writer (the request that just ended is in the answer), runs its queries and renders the whole body into a
 * buffer of its own; back on the loop, the body is sent. A client that goes away first leaves the job to finish and free
 * itself: the request's pool holds an entry whose dispose tells the job there is nobody left to answer.
 *
 * Without a ledger (gateway.ledger.enabled: false) /usage answers from the workers' counters since start, as before.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "ledger/store.h"
#include "serve/metrics.h"
#include "serve/server.h"
#include "serve/worker.h"
#include "handlers/handlers.h"
#include "handlers/usage.h"

#define MAX_ROWS 512 /* /usage's key × model lines, as the counters since start keep (src/serve/metrics.c) */

/* max 0: every chunk is malloc'ed and freed, whichever thread does it (the socket prototype is thread-local) */
static h2o_buffer_prototype_t job_buffer_prototype = {{0}, {8192}, NULL};

struct job_ref;

struct usage_job {
    uv_work_t work;
    pgw_request_t *r;    /* NULL once the request is gone (loop thread only) */
    struct job_ref *ref; /* the request pool's entry pointing back here, while r is set */
    pgw_store_t *store;
    pgw_usage_render_cb render;
    void *arg;         /* the render's: owned by the job, freed with free() */
    h2o_buffer_t *out; /* the body, written on the pool thread */
    const char *content_type;
    int status;
    char err[256];
};

struct job_ref {
    struct usage_job *job;
};

static void on_request_gone(void *p)
{
    struct job_ref *ref = p;
    if (ref->job != NULL)
        ref->job->r = NULL;
}

static void on_work(uv_work_t *w)
{
    struct usage_job *job = w->data;
    job->store->ops->flush(job->store);
    job->status = job->render(job->store, job->arg, &job->out, &job->content_type, job->err, sizeof(job->err));
}

static void on_after_work(uv_work_t *w, int status)
{
    struct usage_job *job = w->data;
    if (job->r != NULL) {
        job->ref->job = NULL;
        if (job->status == 200)
            pgw_send_body(job->r->req, 200, job->content_type, job->out->bytes, job->out->size);
        else
            pgw_send_error(job->r->req, 500, PGW_ERR_API, "cannot read the ledger: %s", job->err);
    }
    h2o_buffer_dispose(&job->out);
    free(job->arg);
    free(job);
}

void pgw_usage_run(pgw_request_t *r, pgw_usage_render_cb render, void *arg)
{
    struct usage_job *job = h2o_mem_alloc(sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->work.data = job;
    job->r = r;
    job->store = pgw_store_get();
    job->render = render;
    job->arg = arg;
    h2o_buffer_init(&job->out, &job_buffer_prototype);
    struct job_ref *ref = h2o_mem_alloc_shared(&r->req->pool, sizeof(*ref), on_request_gone);
    ref->job = job;
    job->ref = ref;
    uv_queue_work(&r->worker->loop, &job->work, on_work, on_after_work);
}

/* ---- the JSON ---- */

struct usage_row {
    char *key, *model;
    long long n[5];
    double cost;
    long long today_n[5];
    double today_cost;
};

struct rows {
    struct usage_row *v;
    size_t num, cap;
    int64_t first_ms;
    int today;   /* filling the today columns */
    size_t next; /* the merge position for today */
};

static int by_key_model(const void *a, const void *b)
{
    const struct usage_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->model, y->model);
}

static int by_requests(const void *a, const void *b)
{
    const struct usage_row *x = a, *y = b;
    return x->n[0] != y->n[0] ? (x->n[0] < y->n[0] ? 1 : -1) : by_key_model(a, b);
}

static int on_row(void *ctx, const pgw_ledger_row_t *row)
{
    struct rows *rows = ctx;
    const char *model = row->b != NULL ? row->b : "";
    if (rows->today) {
        /* both answers are in (key, model) order: walk forward to the line */
        while (rows->next < rows->num) {
            struct usage_row *u = rows->v + rows->next;
            int c = strcmp(u->key, row->a);
            if (c == 0)
                c = strcmp(u->model, model);
            if (c == 0) {
                long long n[5] = {row->requests, row->input, row->output, row->cache_read, row->cache_write};
                memcpy(u->today_n, n, sizeof(n));
                u->today_cost = row->cost_usd;
                break;
            }
            if (c > 0)
                break;
            ++rows->next;
        }
        return 0;
    }
    if (rows->num == rows->cap) {
        rows->cap = rows->cap == 0 ? 64 : rows->cap * 2;
        rows->v = h2o_mem_realloc(rows->v, rows->cap * sizeof(rows->v[0]));
    }
    struct usage_row *u = rows->v + rows->num++;
    memset(u, 0, sizeof(*u));
    u->key = strdup(row->a);
    u->model = strdup(model);
    long long n[5] = {row->requests, row->input, row->output, row->cache_read, row->cache_write};
    memcpy(u->n, n, sizeof(n));
    u->cost = row->cost_usd;
    if (rows->first_ms == 0 || row->first_ms < rows->first_ms)
        rows->first_ms = row->first_ms;
    return 0;
}

/* More than MAX_ROWS lines (a wildcard route passes any model name): the busiest stay, the rest of each key is summed
 * under "(other)", as the counters since start do. */
static void bound(struct rows *rows)
{
    if (rows->num <= MAX_ROWS)
        return;
    qsort(rows->v, rows->num, sizeof(rows->v[0]), by_requests);
    size_t keep = MAX_ROWS / 2, out = keep;
    for (size_t i = keep; i != rows->num; ++i) {
        struct usage_row *u = rows->v + i, *other = NULL;
        for (size_t j = keep; j != out; ++j)
            if (strcmp(rows->v[j].key, u->key) == 0)
                other = rows->v + j;
        if (other == NULL) {
            other = rows->v + out++;
            if (other != u) {
                char *key = other->key, *model = other->model;
                *other = *u;
                u->key = key; /* freed below in u's place */
                u->model = model;
            }
            free(other->model);
            other->model = strdup("(other)");
            continue;
        }
        for (int k = 0; k != 5; ++k) {
            other->n[k] += u->n[k];
            other->today_n[k] += u->today_n[k];
        }
        other->cost += u->cost;
        other->today_cost += u->today_cost;
    }
    for (size_t i = out; i != rows->num; ++i) {
        free(rows->v[i].key);
        free(rows->v[i].model);
    }
    rows->num = out;
    qsort(rows->v, rows->num, sizeof(rows->v[0]), by_key_model);
}

static void counts(h2o_buffer_t **out, const char *name, const long long *n, double cost)
{
    char tmp[320];
    int len = snprintf(tmp, sizeof(tmp),
                       "\"%s\":{\"requests\":%lld,\"input_tokens\":%lld,\"output_tokens\":%lld,\"cache_read_input_tokens\":%lld,"
                       "\"cache_creation_input_tokens\":%lld,\"cost_usd\":%.6f}",
                       name, n[0], n[1], n[2], n[3], n[4], cost);
    pgw_buf_append(out, tmp, len);
}

static int render_json(pgw_store_t *store, void *arg, h2o_buffer_t **out, const char **content_type, char *err, size_t errsz)
{
    struct rows rows = {0};
    int64_t now = (int64_t)pgw_now_ms();
    pgw_ledger_query_t all = {0, PGW_LEDGER_BY_KEY_MODEL, 0}, today = {pgw_ledger_period_start(now, 0), PGW_LEDGER_BY_KEY_MODEL, 0};
    int ret = 500;

    if (store->ops->query(store, &all, on_row, &rows, err, errsz) != 0)
        goto Exit;
    rows.today = 1;
    if (store->ops->query(store, &today, on_row, &rows, err, errsz) != 0)
        goto Exit;
    bound(&rows);

    char tmp[128];
    time_t since = (time_t)((rows.first_ms != 0 ? rows.first_ms : now) / 1000), t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&since, &tm);
    strftime(tmp, sizeof(tmp), "{\"since\":\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    pgw_buf_append_str(out, tmp);
    gmtime_r(&t, &tm);
    strftime(tmp, sizeof(tmp), ",\"today\":\"%Y-%m-%d\",\"keys\":{", &tm);
    pgw_buf_append_str(out, tmp);
    for (size_t i = 0; i != rows.num; ++i) {
        const struct usage_row *u = rows.v + i;
        if (i == 0 || strcmp(rows.v[i - 1].key, u->key) != 0) {
            if (i != 0)
                pgw_buf_append_lit(out, "},");
            pgw_json_append_string(out, u->key, strlen(u->key));
            pgw_buf_append_lit(out, ":{");
        } else {
            pgw_buf_append_lit(out, ",");
        }
        pgw_json_append_string(out, u->model, strlen(u->model));
        pgw_buf_append_lit(out, ":{");
        counts(out, "total", u->n, u->cost);
        pgw_buf_append_lit(out, ",");
        counts(out, "today", u->today_n, u->today_cost);
        pgw_buf_append_lit(out, "}");
    }
    if (rows.num != 0)
        pgw_buf_append_lit(out, "}");
    pgw_buf_append_lit(out, "}}");
    *content_type = "application/json";
    ret = 200;
Exit:
    for (size_t i = 0; i != rows.num; ++i) {
        free(rows.v[i].key);
        free(rows.v[i].model);
    }
    free(rows.v);
    return ret;
}

int pgw_handle_usage(pgw_request_t *r)
{
    if (r->key_name == NULL || strcmp(r->key_name, "master") != 0) {
        pgw_send_error(r->req, 403, PGW_ERR_PERMISSION, "only the master key may read /usage");
        return 0;
    }
    if (pgw_store_get() == NULL) {
        pgw_metrics_t *all[pgw_server->num_workers];
        for (unsigned i = 0; i != pgw_server->num_workers; ++i)
            all[i] = pgw_server->workers[i].metrics;
        h2o_buffer_t *buf;
        h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
        pgw_metrics_render_usage(all, pgw_server->num_workers, pgw_server->started_at, pgw_now_ms(), &buf);
        pgw_send_body(r->req, 200, "application/json", buf->bytes, buf->size);
        h2o_buffer_dispose(&buf);
        return 0;
    }
    pgw_usage_run(r, render_json, NULL);
    return 0;
}
