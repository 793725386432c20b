/* poe-gateway: MIT licence. Request translation that does not hold the event loop: a large body is translated on libuv's
 * thread pool while the worker goes on serving its other clients. */
#ifndef PGW_TRANSLATE_JOB_H
#define PGW_TRANSLATE_JOB_H

#include <uv.h>
#include "upstream/catalog.h"
#include "translate/translate.h"

/**
 * Bodies up to this size are translated on the loop's thread at once (about a millisecond of work at most); larger ones
 * go to the thread pool.
 */
#define PGW_TRANSLATE_INLINE_MAX (64 * 1024)

typedef struct st_pgw_translate_job_t pgw_translate_job_t;

/** The end of a translation: `ret` and `err` as pgw_translate_request returns them (`err` is valid during the call). */
typedef void (*pgw_translate_done_cb)(void *ctx, int ret, const char *err);

/**
 * Translates `body` with `opts` (whose `bot`, when set, belongs to `catalog`) as pgw_translate_request does, into `*out`
 * (an initialised buffer, left empty on failure) and `*res` (disposed by the caller in either case), then calls
 * `cb(ctx, ...)` on the loop's thread. `*job` is set to NULL before `cb` runs.
 *
 * A body up to PGW_TRANSLATE_INLINE_MAX bytes is translated before this returns, `cb` included. A larger one is copied,
 * with the strings and the extra_body of `opts` and a reference to `catalog`, and translated on the thread pool: `*job`
 * holds the pending job until `cb`, and `*out` and `*res` are written just before `cb`, on the loop's thread. The caller
 * must keep `job`, `out`, `res` and `ctx` alive until then, or call pgw_translate_job_cancel first.
 */
void pgw_translate_job_start(pgw_translate_job_t **job, uv_loop_t *loop, const char *body, size_t len,
                             const pgw_translate_opts_t *opts, pgw_catalog_t *catalog, h2o_buffer_t **out, pgw_translated_t *res,
                             pgw_translate_done_cb cb, void *ctx);

/**
 * The caller goes away before the job's callback: it will not be called and the caller's `out`, `res` and `*job` are not
 * touched any more. The job frees what it holds once the pool thread is done with it. Loop thread only.
 */
void pgw_translate_job_cancel(pgw_translate_job_t *job);

/** Bodies being translated on the thread pool now (queued or running), in the whole process. Any thread. */
size_t pgw_translate_jobs_in_progress(void);

#endif
