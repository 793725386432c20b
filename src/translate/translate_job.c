/* poe-gateway: MIT licence. Request translation that does not hold the event loop.
 *
 * How it works
 *
 * Translating a request costs from 4 to 20 ms per megabyte of body, depending on its shape (tool schemas of many small
 * values are the dearest): up to about 0.7 s for a body at the default max_body_bytes. On the worker's loop that would
 * be 0.7 s during which its health probes, and every other developer's stream on that worker, wait. So:
 *
 *   - a body up to PGW_TRANSLATE_INLINE_MAX bytes (a millisecond of work at most: most requests) is translated at once,
 *     on the loop, as before;
 *   - a larger one becomes a job on libuv's thread pool (uv_queue_work). pgw_translate_request is pure (bytes in,
 *     buffers out: no h2o request, no loop, no clock), so it can run there; what it reads must outlive the request,
 *     though, since the request can go away meanwhile (a client that hangs up; HTTP/2 frees a body with its stream).
 *     The job therefore owns a copy of the body and of the options' strings and extra_body, and a reference to the
 *     catalog snapshot the options' bot points into. It translates into its own buffer and result; back on the loop
 *     (the after-work callback), those move into the caller's, and the caller's callback runs. A caller that goes away
 *     first cancels: the job forgets it, and frees everything when the pool thread is done.
 *
 * The job's output buffer uses a prototype of its own that never recycles: h2o's socket buffer prototype is
 * thread-local, and a buffer made from one thread's recycling list must not be freed into it from another. The
 * translator's scratch buffers are made and freed on the pool thread, so they may use that thread's.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/string_.h>
#include "translate/translate_job.h"

struct st_pgw_translate_job_t {
    uv_work_t work;
    /* what the pool thread reads: owned copies */
    char *body;
    size_t len;
    char *upstream_model;
    pgw_extra_body_t *extra_body;
    pgw_translate_opts_t opts;
    pgw_catalog_t *catalog; /* a reference; NULL when opts.bot is */
    /* what it writes */
    h2o_buffer_t *out;
    pgw_translated_t res;
    int ret;
    char err[512];
    /* the caller's, touched on the loop's thread only; cb is NULL once cancelled */
    pgw_translate_job_t **jobp;
    h2o_buffer_t **dst_out;
    pgw_translated_t *dst_res;
    pgw_translate_done_cb cb;
    void *ctx;
};

/* max 0: every chunk is malloc'ed and freed, whichever thread does it, and the prototype itself is never written */
static h2o_buffer_prototype_t job_buffer_prototype = {{0}, {8192}, NULL};

static atomic_size_t in_progress;

static char *dup_or_null(const char *s)
{
    return s != NULL ? h2o_strdup(NULL, s, strlen(s)).base : NULL;
}

static void on_work(uv_work_t *work)
{
    pgw_translate_job_t *job = work->data;
    job->ret = pgw_translate_request(job->body, job->len, &job->opts, &job->out, &job->res, job->err, sizeof(job->err));
    /* the body is not needed any more: give its memory back before the loop gets round to the job */
    free(job->body);
    job->body = NULL;
}

static void on_after_work(uv_work_t *work, int status)
{
    pgw_translate_job_t *job = work->data;

    atomic_fetch_sub_explicit(&in_progress, 1, memory_order_relaxed);
    if (job->cb != NULL) {
        h2o_buffer_t *swap = *job->dst_out;
        *job->dst_out = job->out;
        job->out = swap;
        *job->dst_res = job->res;
        memset(&job->res, 0, sizeof(job->res));
        *job->jobp = NULL;
        job->cb(job->ctx, job->ret, job->err);
    }
    h2o_buffer_dispose(&job->out);
    pgw_translated_dispose(&job->res);
    pgw_catalog_release(job->catalog);
    free(job->upstream_model);
    free(job->extra_body);
    free(job);
}

void pgw_translate_job_start(pgw_translate_job_t **jobp, uv_loop_t *loop, const char *body, size_t len,
                             const pgw_translate_opts_t *opts, pgw_catalog_t *catalog, h2o_buffer_t **out, pgw_translated_t *res,
                             pgw_translate_done_cb cb, void *ctx)
{
    if (len <= PGW_TRANSLATE_INLINE_MAX) {
        char err[512];
        *jobp = NULL;
        int ret = pgw_translate_request(body, len, opts, out, res, err, sizeof(err));
        cb(ctx, ret, err);
        return;
    }

    pgw_translate_job_t *job = h2o_mem_alloc(sizeof(*job));
    memset(job, 0, sizeof(*job));
    job->work.data = job;
    job->body = h2o_mem_alloc(len);
    memcpy(job->body, body, len);
    job->len = len;
    job->opts = *opts;
    job->opts.upstream_model = job->upstream_model = dup_or_null(opts->upstream_model);
    job->opts.extra_body = job->extra_body = pgw_extra_body_dup(opts->extra_body);
    if (opts->bot != NULL && catalog != NULL) {
        job->catalog = catalog;
        pgw_catalog_retain(catalog);
    }
    h2o_buffer_init(&job->out, &job_buffer_prototype);
    job->jobp = jobp;
    job->dst_out = out;
    job->dst_res = res;
    job->cb = cb;
    job->ctx = ctx;

    *jobp = job;
    atomic_fetch_add_explicit(&in_progress, 1, memory_order_relaxed);
    int ret = uv_queue_work(loop, &job->work, on_work, on_after_work);
    if (ret != 0) {
        /* cannot happen with valid arguments; translate here rather than fail the request */
        on_work(&job->work);
        on_after_work(&job->work, ret);
    }
}

void pgw_translate_job_cancel(pgw_translate_job_t *job)
{
    job->cb = NULL;
    job->ctx = NULL;
    job->jobp = NULL;
    job->dst_out = NULL;
    job->dst_res = NULL;
}

size_t pgw_translate_jobs_in_progress(void)
{
    return atomic_load_explicit(&in_progress, memory_order_relaxed);
}
