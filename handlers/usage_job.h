/* poe-gateway: MIT licence. What the /usage answers (JSON and the page) share: a render of the ledger on the thread pool. */
#ifndef PGW_HANDLERS_USAGE_JOB_H
#define PGW_HANDLERS_USAGE_JOB_H

#include <h2o.h>
#include "ledger/store.h"
#include "serve/request.h"

/**
 * Renders a body from `store` into `*out` (a buffer the caller made) on a pool thread, with `arg`. Returns 200 with
 * *content_type set, or 500 with a message in `err`.
 */
typedef int (*pgw_usage_render_cb)(pgw_store_t *store, void *arg, h2o_buffer_t **out, const char **content_type, char *err,
                                   size_t errsz);

/**
 * Runs `render` on libuv's thread pool, after the ledger's pending records are stored, and sends its body as the answer
 * to `r` (unless the client has gone meanwhile). `arg` (malloc'ed, may be NULL) becomes the job's and is freed with it.
 * The process's store must be set.
 */
void pgw_usage_run(pgw_request_t *r, pgw_usage_render_cb render, void *arg);

#endif
