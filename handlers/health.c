/* poe-gateway: MIT licence. Probes: Claude Code's warm-up, liveness and readiness (never touching Poe), and /health. */
#include <stdio.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "serve/server.h"
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

/* GET /health/readiness: 200 while serving, 503 once a graceful stop has begun. */
int pgw_handle_readiness(pgw_request_t *r)
{
    int stopping = atomic_load(&pgw_server->shutting_down);
    char body[512];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"%s\",\"version\":\"%s\",\"routes\":%zu,\"workers\":%u,\"uptime_s\":%llu}",
                     stopping ? "shutting_down" : "ready", PGW_VERSION, r->conf->num_routes, pgw_server->num_workers,
                     (unsigned long long)((pgw_now_ms() - pgw_server->started_at) / 1000));
    pgw_send_body(r->req, stopping ? 503 : 200, "application/json", body, n);
    return 0;
}

/* GET /health (authenticated): whether each upstream answers, from a probe that spends no points, cached 30 s. */
int pgw_handle_health(pgw_request_t *r)
{
    pgw_upcheck_respond(r->worker->upcheck, r->conf, r->req);
    return 0;
}
