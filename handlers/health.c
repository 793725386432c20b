/* poe-gateway: MIT licence. Probes: Claude Code's warm-up, liveness and readiness (never touching Poe), and /health. */
#include <stdio.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "serve/server.h"
#include "serve/shared.h"
#include "upstream/upcheck.h"
#include "serve/worker.h"
#include "handlers/handlers.h"

/* HEAD /api/hello: Claude Code's connection warm-up; no credentials. */
int pgw_handle_hello(pgw_request_t *r)
{
    pgw_send_body(r->req, 200, "application/json", H2O_STRLIT("{}"));
    return 0;
}

/* GET /health/liveliness (LiteLLM's spelling) and /health/liveness: the process answers; nothing else is checked. */
int pgw_handle_liveliness(pgw_request_t *r)
{
    pgw_send_body(r->req, 200, "application/json", H2O_STRLIT("\"I'm alive!\""));
    return 0;
}

/*
 * GET /health/readiness: 200 while serving, 503 once a graceful stop has begun. With gateway.redis, `shared_state` says
 * "ok" or "degraded" (Redis does not answer: limits are local shares), and `replicas` how many Redis last counted; a
 * degraded replica stays ready (it serves on its share) unless gateway.redis_failure is closed.
 */
int pgw_handle_readiness(pgw_request_t *r)
{
    int stopping = atomic_load(&pgw_server->shutting_down);
    int shared = pgw_server->conf->redis_host != NULL, degraded = shared && atomic_load(&pgw_redis_clients_down) != 0;
    int refused = degraded && r->conf->redis_fail_closed;
    char body[512], extra[128] = "";
    if (shared)
        snprintf(extra, sizeof(extra), ",\"shared_state\":\"%s\",\"replicas\":%u", degraded ? "degraded" : "ok",
                 atomic_load(&pgw_shared_replicas));
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"version\":\"%s\",\"routes\":%zu,\"workers\":%u,\"uptime_s\":%llu%s}",
                     stopping ? "shutting_down" : refused ? "shared_state_unavailable" : "ready", PGW_VERSION,
                     r->conf->num_routes, pgw_server->num_workers,
                     (unsigned long long)((pgw_now_ms() - pgw_server->started_at) / 1000), extra);
    pgw_send_body(r->req, stopping || refused ? 503 : 200, "application/json", body, n);
    return 0;
}

/* GET /health (authenticated): whether each upstream answers, from a probe that spends no points, cached 30 s. */
int pgw_handle_health(pgw_request_t *r)
{
    pgw_upcheck_respond(r->worker->upcheck, r->conf, r->req);
    return 0;
}
