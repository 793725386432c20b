/* poe-gateway: MIT licence. GET /metrics (Prometheus text): the workers' counters, summed. */
#include <string.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "ledger/reconcile.h"
#include "serve/metrics.h"
#include "serve/server.h"
#include "serve/shaper.h"
#include "serve/shared.h"
#include "translate/translate_job.h"
#include "upstream/upstream.h"
#include "serve/worker.h"
#include "handlers/handlers.h"

/*
 * gateway.metrics_auth is master (the default), keys (any caller) or none (routing skipped authentication).
 * Routing has identified the caller; this narrows master down. Returns 0 to go on.
 */
static int check_access(pgw_request_t *r, pgw_metrics_auth_t mode)
{
    if (mode == PGW_METRICS_AUTH_MASTER && (r->key_name == NULL || strcmp(r->key_name, "master") != 0)) {
        pgw_send_error(r->req, 403, PGW_ERR_PERMISSION, "only the master key may read %.*s", (int)r->req->path_normalized.len,
                       r->req->path_normalized.base);
        return -1;
    }
    return 0;
}

/*
 * Gathers every worker's table and gauges. Other workers' state is read without stopping them, safely: every worker's
 * table exists before any worker starts (pgw_server_run prepares them all first), their rows are published with release
 * stores and read with acquire loads (src/serve/metrics.c), the gauges are atomics, and the pointers to a worker's upstream
 * client and shaper are atomic too, as a worker sets them on its own thread when it starts (NULL until then).
 */
static void collect(pgw_metrics_t **all, pgw_metrics_gauges_t *g)
{
    memset(g, 0, sizeof(*g));
    for (unsigned i = 0; i != pgw_server->num_workers; ++i) {
        pgw_worker_t *w = pgw_server->workers + i;
        all[i] = w->metrics;
        g->in_flight += atomic_load_explicit(&w->inflight, memory_order_relaxed);
        if (w->shaper != NULL)
            g->queued += pgw_shaper_queued(w->shaper);
        if (w->upstream != NULL) {
            g->upstream_connections += pgw_upstream_sockets(w->upstream);
            g->upstream_retries += pgw_upstream_retries(w->upstream);
        }
    }
    g->translations = pgw_translate_jobs_in_progress();
    g->shared = pgw_server->conf->redis_host != NULL;
    g->shared_degraded = atomic_load(&pgw_redis_clients_down) != 0;
    g->replicas = atomic_load(&pgw_shared_replicas);
    g->started_at_ms = pgw_server->started_at;
}

/* Poe's balance per upstream key, as reconciliation last polled it (docs/ledger.md#reconciliation). */
static void render_balances(h2o_buffer_t **buf)
{
    pgw_reconcile_balance_t b[32];
    size_t n = pgw_reconcile_balances(b, sizeof(b) / sizeof(b[0]));
    char line[160];
    if (n == 0)
        return;
    pgw_buf_append_lit(buf, "# HELP poe_gateway_poe_balance_points Poe's point balance of an upstream key, as last polled.\n"
                            "# TYPE poe_gateway_poe_balance_points gauge\n");
    for (size_t i = 0; i != n; ++i)
        pgw_buf_append(
            buf, line,
            snprintf(line, sizeof(line), "poe_gateway_poe_balance_points{upstream=\"%s\"} %lld\n", b[i].upstream, b[i].points));
    pgw_buf_append_lit(buf, "# HELP poe_gateway_poe_balance_updated_seconds When the balance was last polled (Unix time).\n"
                            "# TYPE poe_gateway_poe_balance_updated_seconds gauge\n");
    for (size_t i = 0; i != n; ++i)
        pgw_buf_append(buf, line,
                       snprintf(line, sizeof(line), "poe_gateway_poe_balance_updated_seconds{upstream=\"%s\"} %lld\n",
                                b[i].upstream, (long long)(b[i].at_ms / 1000)));
}

int pgw_handle_metrics(pgw_request_t *r)
{
    if (check_access(r, r->conf->metrics_auth) != 0)
        return 0;
    pgw_metrics_t *all[pgw_server->num_workers];
    pgw_metrics_gauges_t g;
    collect(all, &g);
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_metrics_render(all, pgw_server->num_workers, &g, &buf);
    render_balances(&buf);
    pgw_send_body(r->req, 200, "text/plain; version=0.0.4; charset=utf-8", buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
    return 0;
}
