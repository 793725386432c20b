/* poe-gateway: MIT licence. A /usage answer rendered on libuv's thread pool (handlers/usage_job.h).
 *
 * How it works. The answer is read from the ledger's SQLite file, which may take milliseconds: too long for the worker's
 * loop, where other developers' streams wait. So the handler makes a job for libuv's thread pool: the job flushes the
 * ledger's writer (the request that just ended is in the answer), runs its queries and renders the whole body into a
 * buffer of its own; back on the loop, the body is sent. A client that goes away first leaves the job to finish and free
 * itself: the request's pool holds an entry whose dispose tells the job there is nobody left to answer.
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "common/errors.h"
#include "serve/worker.h"
#include "handlers/usage_job.h"

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
