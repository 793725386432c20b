/* poe-gateway: MIT licence. Reachability of each configured upstream, probed without spending Poe points.
 *
 * Each worker keeps one entry per distinct api_base. A /health request that finds every entry fresh is answered at
 * once; otherwise it waits on the worker's list while the stale entries are probed (one probe per entry at a time,
 * however many requests wait), and every waiting request is answered when the last probe finishes. A waiting request
 * whose client leaves is unlinked by its pool's dispose callback.
 */
#include <stdio.h>
#include <string.h>
#include "common/errors.h"
#include "common/json.h"
#include "common/log.h"
#include "upstream/upcheck.h"

struct entry {
    char *api_base;
    char *url;
    int probing;
    int ssl_verify;
    int reachable;
    int status;
    double latency_ms;
    uint64_t checked_at; /* uv_now, 0 = never */
    uint64_t started_at;
    char error[256];
    pgw_upcheck_t *uc;
};

struct st_pgw_upcheck_t {
    pgw_upstream_t *upstream;
    uv_loop_t *loop;
    struct entry **entries; /* never freed while the worker runs: probes in flight hold them */
    size_t num_entries;
    h2o_linklist_t waiting; /* struct waiter */
};

struct waiter {
    h2o_linklist_t link;
    h2o_req_t *req;
    pgw_upcheck_t *uc;
    const pgw_config_t *conf; /* the request's configuration (it holds a reference) */
};

void pgw_upcheck_update(pgw_upcheck_t *uc, const pgw_config_t *conf)
{
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const char *base = conf->routes[i].api_base;
        if (base == NULL)
            continue;
        size_t j;
        for (j = 0; j != uc->num_entries; ++j)
            if (strcmp(uc->entries[j]->api_base, base) == 0)
                break;
        if (j != uc->num_entries)
            continue;
        struct entry *e = h2o_mem_alloc(sizeof(*e));
        memset(e, 0, sizeof(*e));
        e->uc = uc;
        e->ssl_verify = conf->routes[i].ssl_verify;
        e->api_base = h2o_strdup(NULL, base, SIZE_MAX).base;
        size_t len = strlen(base);
        int has_v1 = len >= 3 && strcmp(base + len - 3, "/v1") == 0;
        e->url = h2o_mem_alloc(len + sizeof("/v1/models"));
        sprintf(e->url, "%s%s", base, has_v1 ? "/models" : "/v1/models");
        uc->entries = realloc(uc->entries, sizeof(*uc->entries) * (uc->num_entries + 1));
        uc->entries[uc->num_entries++] = e;
    }
}

pgw_upcheck_t *pgw_upcheck_create(pgw_upstream_t *upstream, const pgw_config_t *conf)
{
    pgw_upcheck_t *uc = h2o_mem_alloc(sizeof(*uc));
    memset(uc, 0, sizeof(*uc));
    uc->upstream = upstream;
    h2o_linklist_init_anchor(&uc->waiting);
    pgw_upcheck_update(uc, conf);
    return uc;
}

/* Whether the current configuration still routes to the entry's api_base (entries of removed routes stay, unused). */
static int in_use(const struct entry *e, const pgw_config_t *conf)
{
    for (size_t i = 0; i != conf->num_routes; ++i)
        if (conf->routes[i].api_base != NULL && strcmp(conf->routes[i].api_base, e->api_base) == 0)
            return 1;
    return 0;
}

static int stale(const struct entry *e, uint64_t now)
{
    return e->probing || e->checked_at == 0 || now - e->checked_at >= PGW_UPCHECK_CACHE_MS;
}

static int all_fresh(pgw_upcheck_t *uc, const pgw_config_t *conf, uint64_t now)
{
    for (size_t i = 0; i != uc->num_entries; ++i)
        if (in_use(uc->entries[i], conf) && stale(uc->entries[i], now))
            return 0;
    return 1;
}

static void send_report(pgw_upcheck_t *uc, const pgw_config_t *conf, h2o_req_t *req)
{
    h2o_buffer_t *buf;
    int healthy = 1;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_buf_append_lit(&buf, "{\"upstreams\":[");
    size_t listed = 0;
    for (size_t i = 0; i != uc->num_entries; ++i) {
        struct entry *e = uc->entries[i];
        char num[64];
        if (!in_use(e, conf))
            continue;
        healthy &= e->reachable;
        if (listed++ != 0)
            pgw_buf_append_lit(&buf, ",");
        pgw_buf_append_lit(&buf, "{\"api_base\":");
        pgw_json_append_string(&buf, e->api_base, strlen(e->api_base));
        pgw_buf_append_str(&buf, e->reachable ? ",\"reachable\":true" : ",\"reachable\":false");
        pgw_buf_append_lit(&buf, ",\"status\":");
        pgw_json_append_int(&buf, e->status);
        snprintf(num, sizeof(num), ",\"latency_ms\":%.1f", e->latency_ms);
        pgw_buf_append_str(&buf, num);
        if (e->error[0] != '\0') {
            pgw_buf_append_lit(&buf, ",\"error\":");
            pgw_json_append_string(&buf, e->error, strlen(e->error));
        }
        pgw_buf_append_lit(&buf, "}");
    }
    pgw_buf_append_str(&buf, healthy ? "],\"status\":\"healthy\"}" : "],\"status\":\"unhealthy\"}");
    pgw_send_body(req, healthy ? 200 : 503, "application/json", buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
}

static void on_waiter_dispose(void *p)
{
    struct waiter *w = p;
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}

static void on_probe_head(pgw_upstream_transfer_t *t, int status)
{
    struct entry *e = pgw_upstream_data(t);
    e->status = status;
}

static int on_probe_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    return 0; /* the catalog itself is not needed here */
}

static void on_probe_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    struct entry *e = pgw_upstream_data(t);
    pgw_upcheck_t *uc = e->uc;
    uint64_t now = uv_now(uc->loop);

    e->probing = 0;
    e->checked_at = now != 0 ? now : 1;
    e->latency_ms = (double)(now - e->started_at);
    e->reachable = err == PGW_UPSTREAM_OK && e->status >= 200 && e->status < 300;
    if (err != PGW_UPSTREAM_OK)
        snprintf(e->error, sizeof(e->error), "%s", errstr != NULL ? errstr : "failed");
    else if (!e->reachable)
        snprintf(e->error, sizeof(e->error), "answered status %d", e->status);
    else
        e->error[0] = '\0';

    /* answer every waiter whose configuration is now all fresh */
    h2o_linklist_t *node = uc->waiting.next;
    while (node != &uc->waiting) {
        struct waiter *w = H2O_STRUCT_FROM_MEMBER(struct waiter, link, node);
        node = node->next;
        if (!all_fresh(uc, w->conf, now))
            continue;
        h2o_linklist_unlink(&w->link);
        send_report(uc, w->conf, w->req);
    }
}

static const pgw_upstream_callbacks_t probe_callbacks = {on_probe_head, on_probe_body, on_probe_complete};

void pgw_upcheck_respond(pgw_upcheck_t *uc, const pgw_config_t *conf, h2o_req_t *req)
{
    uc->loop = req->conn->ctx->loop;
    uint64_t now = uv_now(uc->loop);
    if (all_fresh(uc, conf, now)) {
        send_report(uc, conf, req);
        return;
    }
    struct waiter *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), on_waiter_dispose);
    memset(w, 0, sizeof(*w));
    w->req = req;
    w->uc = uc;
    w->conf = conf;
    h2o_linklist_insert(&uc->waiting, &w->link);
    for (size_t i = 0; i != uc->num_entries; ++i) {
        struct entry *e = uc->entries[i];
        if (e->probing || !in_use(e, conf) || !stale(e, now))
            continue;
        e->probing = 1;
        e->status = 0;
        e->started_at = now;
        pgw_upstream_request_t probe = {e->url, "GET", h2o_iovec_init(NULL, 0), NULL, PGW_UPCHECK_TIMEOUT, PGW_UPCHECK_TIMEOUT,
                                        0, e->ssl_verify, 0};
        pgw_upstream_start(uc->upstream, &probe, &probe_callbacks, e);
    }
}
