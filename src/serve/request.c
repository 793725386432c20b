/* poe-gateway: MIT licence. Per-request bookkeeping: the state every handler starts with, and what is done when the
 * request ends, whatever happened to it.
 *
 * pgw_request_begin allocates pgw_request_t from the request pool as a shared entry, takes a reference to the worker's
 * current configuration generation, notes the request in the connection table and counts it on the worker. When libh2o
 * disposes of the request (the response is finished, or the client left), the entry's dispose writes the access-log
 * line, records the request in the worker's metrics (and its Claude Code session's totals), releases the generation, ends
 * the request in the connection table and tells the worker (pgw_worker_request_ended).
 */
#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>
#include "common/clock.h"
#include "serve/generation.h"
#include "common/log.h"
#include "config/route_match.h"
#include "ledger/cost.h"
#include "ledger/store.h"
#include "serve/metrics.h"
#include "serve/request.h"
#include "serve/sessions.h"
#include "serve/worker.h"

#define MODULE_NAME "access"

h2o_iovec_t pgw_req_header(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    if (i < 0)
        return h2o_iovec_init(NULL, 0);
    return req->headers.entries[i].value;
}

/* Appends a routed request (not count_tokens) to the ledger, with its cost (docs/ledger.md#the-ledger). */
static void note_in_ledger(pgw_request_t *r, double ms)
{
    pgw_store_t *store = pgw_store_get();
    if (store == NULL || r->route == NULL || r->no_ledger)
        return;
    h2o_req_t *req = r->req;
    pgw_ledger_record_t rec;
    const char *model = r->model != NULL ? r->model : "";
    rec.at_ms = (int64_t)pgw_now_ms();
    pgw_ledger_copy(rec.key, sizeof(rec.key), r->key_name, r->key_name != NULL ? strlen(r->key_name) : 0);
    /* the id as the access log and /usage show it (pgw_session_id) */
    pgw_ledger_copy(rec.session, sizeof(rec.session), r->session_id, r->session_id != NULL ? strlen(r->session_id) : 0);
    pgw_ledger_copy(rec.route, sizeof(rec.route), r->route->model_name, strlen(r->route->model_name));
    pgw_ledger_copy(rec.model, sizeof(rec.model), model, strlen(model));
    if (pgw_route_upstream_model(r->route, model, strlen(model), rec.bot, sizeof(rec.bot)) < 0)
        pgw_ledger_copy(rec.bot, sizeof(rec.bot), model, strlen(model));
    memcpy(rec.upstream, r->route->api_key_fp, sizeof(rec.upstream));
    strcpy(rec.kind, r->route->kind == PGW_ROUTE_ANTHROPIC ? "anthropic" : "openai");
    strcpy(rec.outcome, pgw_outcome_name(r->outcome));
    rec.status = req->res.status;
    rec.input = r->usage.input_tokens;
    rec.output = r->usage.output_tokens;
    rec.cache_read = r->usage.cache_read_input_tokens;
    rec.cache_write = r->usage.cache_creation_input_tokens;
    rec.duration_ms = (uint32_t)ms;
    rec.cost_usd = pgw_cost_of_request(r->route, rec.bot, &r->usage);
    store->ops->record(store, &rec);
}

/* Runs when the request's pool is cleared (h2o_dispose_request): the request is over, whatever happened to it. */
static void on_request_dispose(void *p)
{
    pgw_request_t *r = p;
    h2o_req_t *req = r->req;
    struct timeval end;
    char peer[INET6_ADDRSTRLEN + 8] = "-";
    struct sockaddr_storage ss;

    gettimeofday(&end, NULL);
    double ms = h2o_timeval_subtract(&req->timestamps.request_begin_at, &end) / 1000.0;
    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sslen != 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, peer, sizeof(peer));
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, peer, sizeof(peer));
    }
    int version = req->version;
    char usage[160] = "";
    if (r->usage.input_tokens != 0 || r->usage.output_tokens != 0)
        snprintf(usage, sizeof(usage), " in=%lld out=%lld cache_read=%lld cache_write=%lld", r->usage.input_tokens,
                 r->usage.output_tokens, r->usage.cache_read_input_tokens, r->usage.cache_creation_input_tokens);
    /* a query string may carry a key (?key=, ?api_key=): log it only when it names nothing secret-looking */
    int path_len = (int)req->path.len;
    const char *hidden = "";
    if (req->query_at != SIZE_MAX) {
        h2o_iovec_t q = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
        if (h2o_strstr(q.base, q.len, H2O_STRLIT("key")) != SIZE_MAX || h2o_strstr(q.base, q.len, H2O_STRLIT("token")) != SIZE_MAX ||
            h2o_strstr(q.base, q.len, H2O_STRLIT("KEY")) != SIZE_MAX || h2o_strstr(q.base, q.len, H2O_STRLIT("secret")) != SIZE_MAX) {
            path_len = (int)req->query_at;
            hidden = "?[query hidden]";
        }
    }
    char outcome[48] = "";
    if (r->outcome != PGW_OUTCOME_OK)
        snprintf(outcome, sizeof(outcome), " outcome=%s", pgw_outcome_name(r->outcome));
    /* the ids hold only bytes that are safe in a log line (pgw_session_id) */
    char session[3 * (PGW_SESSION_ID_MAX + 16)] = "";
    snprintf(session, sizeof(session), "%s%s%s%s%s%s", r->session_id != NULL ? " session=" : "",
             r->session_id != NULL ? r->session_id : "", r->agent_id != NULL ? " agent=" : "",
             r->agent_id != NULL ? r->agent_id : "", r->parent_agent_id != NULL ? " parent_agent=" : "",
             r->parent_agent_id != NULL ? r->parent_agent_id : "");
    pgw_log_info(MODULE_NAME, "%s \"%.*s %.*s%s HTTP/%s\" %d route=%s%s%s key=%s dur_ms=%.1f bytes=%zu%s%s%s", peer,
                 (int)req->method.len, req->method.base, path_len, req->path.base, hidden,
                 version >= 0x200 ? "2" : version == 0x101 ? "1.1" : "1.0", req->res.status,
                 r->route_name != NULL ? r->route_name : "-", r->first_route_name != NULL ? " fallback_from=" : "",
                 r->first_route_name != NULL ? r->first_route_name : "", r->key_name != NULL ? r->key_name : "-", ms,
                 req->bytes_sent, usage, outcome, session);

    pgw_worker_t *w = r->worker;
    double ttfb = h2o_timeval_is_null(&req->timestamps.response_start_at)
                      ? ms / 1000.0
                      : h2o_timeval_subtract(&req->timestamps.request_begin_at, &req->timestamps.response_start_at) / 1e6;
    pgw_metrics_request_t mr = {r->key_name != NULL ? r->key_name : "-", r->route_name != NULL ? r->route_name : "-",
                                r->model != NULL && r->route_name != NULL ? r->model : "-", req->res.status, ttfb, ms / 1000.0,
                                &r->usage, r->outcome};
    pgw_metrics_record(w->metrics, &mr, pgw_now_ms());
    /* per-session totals: for /usage only, never a metrics label (docs/request-path.md#sessions-and-subagents) */
    if (r->session_id != NULL && r->key_name != NULL)
        pgw_sessions_record(pgw_sessions(), r->key_name, r->session_id, r->agent_id, &r->usage, pgw_now_ms());
    note_in_ledger(r, ms);
    pgw_generation_release(r->gen);
    if (r->client_conn != NULL)
        pgw_conns_request_end(r->client_conn);
    pgw_worker_request_ended(w);
}

pgw_request_t *pgw_request_begin(h2o_req_t *req)
{
    pgw_worker_t *w = H2O_STRUCT_FROM_MEMBER(pgw_worker_t, ctx, req->conn->ctx);
    pgw_request_t *r = h2o_mem_alloc_shared(&req->pool, sizeof(*r), on_request_dispose);
    *r = (pgw_request_t){req, w, w->gen->conf, w->gen, NULL, NULL, NULL};
    atomic_fetch_add(&w->gen->refs, 1);
    memset(&r->usage, 0, sizeof(r->usage));
    r->model = NULL;
    r->pending_handler = NULL;
    r->route = NULL;
    r->body = NULL;
    r->endpoint = 0;
    r->no_ledger = 0;
    r->bucket = NULL;
    r->client_conn = pgw_conns_request_begin(req);
    r->session_id = pgw_session_id(&req->pool, pgw_req_header(req, H2O_STRLIT(PGW_SESSION_HEADER)));
    r->agent_id = pgw_session_id(&req->pool, pgw_req_header(req, H2O_STRLIT(PGW_AGENT_HEADER)));
    r->parent_agent_id = pgw_session_id(&req->pool, pgw_req_header(req, H2O_STRLIT(PGW_PARENT_AGENT_HEADER)));
    pgw_worker_request_begun(w);
    return r;
}
