/* poe-gateway: MIT licence. Per-request state every handler starts with, from the request's begin to its end. */
#ifndef PGW_REQUEST_H
#define PGW_REQUEST_H

#include <h2o.h>
#include "config/config.h"
#include "serve/conns.h"
#include "common/outcome.h"
#include "serve/reqbody.h"
#include "common/usage.h"

struct st_pgw_worker_t;
struct st_pgw_generation_t;
struct st_pgw_shaper_bucket_t;

/**
 * Per-request state every handler starts with. Allocated from the request pool as a shared entry whose dispose
 * writes the access-log line and lets a graceful stop know the request has ended.
 */
typedef struct st_pgw_request_t {
    h2o_req_t *req;
    struct st_pgw_worker_t *worker;  /* the worker whose loop serves the request (src/serve/worker.h) */
    const pgw_config_t *conf;        /* gen->conf */
    struct st_pgw_generation_t *gen; /* the configuration this request began with (a reference; src/serve/generation.h) */
    const char *key_name;            /* who called, for the log ("master", ...); never the key; NULL before auth */
    const pgw_key_t *key;            /* the named key that called; NULL for the master key and before auth */
    const char *route_name;          /* the route's model_name once routed (points into conf) */
    pgw_usage_t usage;               /* tokens the upstream reported, for the log and metrics */
    const char *model;               /* the client's model once routed (request pool), for metrics and usage */
    int (*pending_handler)(struct st_pgw_request_t *r); /* the route handler waiting for a tailnet whois */
    const pgw_route_t *route;                           /* once routed: the route serving the request now */
    h2o_iovec_t route_model; /* the model name `route` is asked for: the client's, or a fallback's (request pool or conf) */
    /* offered a route's failure before any byte went to the client (pgw_relay_hand_off): returns 1 when it takes the
     * request on to a fallback route (docs/request-path.md#fallbacks), else 0. NULL when no fallbacks are configured. */
    int (*fallback)(struct st_pgw_request_t *r, int status);
    void *fallback_data;          /* the fallback's own state (request pool) */
    const char *first_route_name; /* the route first chosen, once a fallback serves the request (points into conf) */
    pgw_reqbody_t *body; /* the inspected body (request pool), kept for a request that waits in the shaper */
    int endpoint;        /* which API the route's handler serves (its own values), kept for a request that waits */
    int no_ledger;       /* set by the handler: a routed request the ledger leaves out (count_tokens spends nothing) */
    struct st_pgw_shaper_bucket_t *bucket; /* the upstream key's bucket, for Poe's limit signals */
    pgw_conn_t *client_conn;               /* the client connection's entry in worker->conns; NULL when it has none */
    pgw_outcome_t outcome;                 /* how the answer ended (the first end that was noted counts) */
    /* Claude Code's session and subagent ids, made safe for logs (src/serve/sessions.h), or NULL (request pool) */
    const char *session_id, *agent_id, *parent_agent_id;
} pgw_request_t;

/**
 * Creates the per-request state for `req`, which a worker's h2o context accepted (called first for every request, by
 * the dispatcher in src/serve/routing.c). The state lives in the request pool; it holds a reference to the worker's current
 * generation, and the request counts on the worker and in its connection's entry until libh2o disposes of it.
 */
pgw_request_t *pgw_request_begin(h2o_req_t *req);

/**
 * Finds the value of a request header by its lower-case name (any header, not only h2o tokens). Returns
 * {NULL, 0} when absent.
 */
h2o_iovec_t pgw_req_header(h2o_req_t *req, const char *name, size_t len);

#endif
