/* poe-gateway: MIT licence. GET /usage: who spent what, from the ledger (docs/ledger.md#looking-at-it), as JSON, or the
 * page to a browser (handlers/usage_page.c); who may read it. The ledger is read on the thread pool (handlers/usage_job.c).
 *
 * Without a ledger (gateway.ledger.enabled: false) /usage answers from the workers' counters since start, as before.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "ledger/store.h"
#include "serve/metrics.h"
#include "serve/server.h"
#include "serve/sessions.h"
#include "serve/worker.h"
#include "handlers/handlers.h"
#include "handlers/usage_job.h"
#include "handlers/usage_page.h"
#include "serve/auth.h"

#define PGW_USAGE_SESSION_S (12 * 3600) /* how long the page's cookie lasts */
#define MAX_ROWS 512                    /* /usage's key × model lines, as the counters since start keep (src/serve/metrics.c) */

/* ---- the JSON ---- */

struct usage_row {
    char *key, *model;
    long long n[5];
    double cost;
    long long today_n[5];
    double today_cost;
};

struct rows {
    struct usage_row *v;
    size_t num, cap;
    int64_t first_ms;
    int today;   /* filling the today columns */
    size_t next; /* the merge position for today */
};

static int by_key_model(const void *a, const void *b)
{
    const struct usage_row *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->model, y->model);
}

static int by_requests(const void *a, const void *b)
{
    const struct usage_row *x = a, *y = b;
    return x->n[0] != y->n[0] ? (x->n[0] < y->n[0] ? 1 : -1) : by_key_model(a, b);
}

static int on_row(void *ctx, const pgw_ledger_row_t *row)
{
    struct rows *rows = ctx;
    const char *model = row->b != NULL ? row->b : "";
    if (rows->today) {
        /* both answers are in (key, model) order: walk forward to the line */
        while (rows->next < rows->num) {
            struct usage_row *u = rows->v + rows->next;
            int c = strcmp(u->key, row->a);
            if (c == 0)
                c = strcmp(u->model, model);
            if (c == 0) {
                long long n[5] = {row->requests, row->input, row->output, row->cache_read, row->cache_write};
                memcpy(u->today_n, n, sizeof(n));
                u->today_cost = row->cost_usd;
                break;
            }
            if (c > 0)
                break;
            ++rows->next;
        }
        return 0;
    }
    if (rows->num == rows->cap) {
        rows->cap = rows->cap == 0 ? 64 : rows->cap * 2;
        rows->v = h2o_mem_realloc(rows->v, rows->cap * sizeof(rows->v[0]));
    }
    struct usage_row *u = rows->v + rows->num++;
    memset(u, 0, sizeof(*u));
    u->key = strdup(row->a);
    u->model = strdup(model);
    long long n[5] = {row->requests, row->input, row->output, row->cache_read, row->cache_write};
    memcpy(u->n, n, sizeof(n));
    u->cost = row->cost_usd;
    if (rows->first_ms == 0 || row->first_ms < rows->first_ms)
        rows->first_ms = row->first_ms;
    return 0;
}

/* More than MAX_ROWS lines (a wildcard route passes any model name): the busiest stay, the rest of each key is summed
 * under "(other)", as the counters since start do. */
static void bound(struct rows *rows)
{
    if (rows->num <= MAX_ROWS)
        return;
    qsort(rows->v, rows->num, sizeof(rows->v[0]), by_requests);
    size_t keep = MAX_ROWS / 2, out = keep;
    for (size_t i = keep; i != rows->num; ++i) {
        struct usage_row *u = rows->v + i, *other = NULL;
        for (size_t j = keep; j != out; ++j)
            if (strcmp(rows->v[j].key, u->key) == 0)
                other = rows->v + j;
        if (other == NULL) {
            other = rows->v + out++;
            if (other != u) {
                char *key = other->key, *model = other->model;
                *other = *u;
                u->key = key; /* freed below in u's place */
                u->model = model;
            }
            free(other->model);
            other->model = strdup("(other)");
            continue;
        }
        for (int k = 0; k != 5; ++k) {
            other->n[k] += u->n[k];
            other->today_n[k] += u->today_n[k];
        }
        other->cost += u->cost;
        other->today_cost += u->today_cost;
    }
    for (size_t i = out; i != rows->num; ++i) {
        free(rows->v[i].key);
        free(rows->v[i].model);
    }
    rows->num = out;
    qsort(rows->v, rows->num, sizeof(rows->v[0]), by_key_model);
}

static void counts(h2o_buffer_t **out, const char *name, const long long *n, double cost)
{
    char tmp[320];
    int len = snprintf(tmp, sizeof(tmp),
                       "\"%s\":{\"requests\":%lld,\"input_tokens\":%lld,\"output_tokens\":%lld,\"cache_read_input_tokens\":%lld,"
                       "\"cache_creation_input_tokens\":%lld,\"cost_usd\":%.6f}",
                       name, n[0], n[1], n[2], n[3], n[4], cost);
    pgw_buf_append(out, tmp, len);
}

/*
 * Claude Code's sessions as the gateway saw them since start (src/serve/sessions.c: the most recent, with their
 * subagents) join the object `out` ends with, as "sessions" (docs/request-path.md#sessions-and-subagents). Safe on any
 * thread.
 */
static void append_sessions(h2o_buffer_t **out)
{
    if ((*out)->size == 0 || (*out)->bytes[(*out)->size - 1] != '}')
        return;
    --(*out)->size;
    pgw_buf_append_lit(out, ",\"sessions\":");
    pgw_sessions_render(pgw_sessions(), out);
    pgw_buf_append_lit(out, "}");
}

static int render_json(pgw_store_t *store, void *arg, h2o_buffer_t **out, const char **content_type, char *err, size_t errsz)
{
    struct rows rows = {0};
    int64_t now = (int64_t)pgw_now_ms();
    pgw_ledger_query_t all = {0, PGW_LEDGER_BY_KEY_MODEL, 0}, today = {pgw_ledger_period_start(now, 0), PGW_LEDGER_BY_KEY_MODEL, 0};
    int ret = 500;

    if (store->ops->query(store, &all, on_row, &rows, err, errsz) != 0)
        goto Exit;
    rows.today = 1;
    if (store->ops->query(store, &today, on_row, &rows, err, errsz) != 0)
        goto Exit;
    bound(&rows);

    char tmp[128];
    time_t since = (time_t)((rows.first_ms != 0 ? rows.first_ms : now) / 1000), t = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&since, &tm);
    strftime(tmp, sizeof(tmp), "{\"since\":\"%Y-%m-%dT%H:%M:%SZ\"", &tm);
    pgw_buf_append_str(out, tmp);
    gmtime_r(&t, &tm);
    strftime(tmp, sizeof(tmp), ",\"today\":\"%Y-%m-%d\",\"keys\":{", &tm);
    pgw_buf_append_str(out, tmp);
    for (size_t i = 0; i != rows.num; ++i) {
        const struct usage_row *u = rows.v + i;
        if (i == 0 || strcmp(rows.v[i - 1].key, u->key) != 0) {
            if (i != 0)
                pgw_buf_append_lit(out, "},");
            pgw_json_append_string(out, u->key, strlen(u->key));
            pgw_buf_append_lit(out, ":{");
        } else {
            pgw_buf_append_lit(out, ",");
        }
        pgw_json_append_string(out, u->model, strlen(u->model));
        pgw_buf_append_lit(out, ":{");
        counts(out, "total", u->n, u->cost);
        pgw_buf_append_lit(out, ",");
        counts(out, "today", u->today_n, u->today_cost);
        pgw_buf_append_lit(out, "}");
    }
    if (rows.num != 0)
        pgw_buf_append_lit(out, "}");
    pgw_buf_append_lit(out, "}}");
    append_sessions(out);
    *content_type = "application/json";
    ret = 200;
Exit:
    for (size_t i = 0; i != rows.num; ++i) {
        free(rows.v[i].key);
        free(rows.v[i].model);
    }
    free(rows.v);
    return ret;
}

/* The value of parameter `name` in the query string, not decoded (keys are printable ASCII); {NULL, 0} when absent. */
static h2o_iovec_t query_param(h2o_req_t *req, const char *name, size_t len)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p), *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > len && memcmp(p, name, len) == 0 && p[len] == '=')
            return h2o_iovec_init(p + len + 1, stop - p - len - 1);
        p = stop + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

/* The pgw_usage cookie's value among the request's Cookie headers (HTTP/2 may split them). */
static h2o_iovec_t session_cookie(h2o_req_t *req)
{
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        for (size_t off = 0; off < v.len;) {
            while (off < v.len && (v.base[off] == ' ' || v.base[off] == ';'))
                ++off;
            const char *semi = memchr(v.base + off, ';', v.len - off);
            size_t n = (semi != NULL ? (size_t)(semi - v.base) : v.len) - off;
            if (n > 10 && memcmp(v.base + off, "pgw_usage=", 10) == 0)
                return h2o_iovec_init(v.base + off + 10, n - 10);
            off += n;
        }
    }
    return h2o_iovec_init(NULL, 0);
}

static int wants_html(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1);
    return i != -1 &&
           h2o_strstr(req->headers.entries[i].value.base, req->headers.entries[i].value.len, H2O_STRLIT("text/html")) != SIZE_MAX;
}

/* The browser gave the master key as ?key= (the login form): a cookie instead, and the page again without the key in
 * its address. The access log hides such a query string (src/serve/request.c). */
static void sign_in(pgw_request_t *r)
{
    h2o_req_t *req = r->req;
    char value[PGW_AUTH_COOKIE_MAX], cookie[PGW_AUTH_COOKIE_MAX + 128];
    size_t len = pgw_auth_cookie_make(r->conf, pgw_now_ms() / 1000 + PGW_USAGE_SESSION_S, value);
    int n = snprintf(cookie, sizeof(cookie), "pgw_usage=%.*s; Path=/usage; Max-Age=%d; HttpOnly; SameSite=Strict%s", (int)len,
                     value, PGW_USAGE_SESSION_S, req->scheme == &H2O_URL_SCHEME_HTTPS ? "; Secure" : "");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, h2o_strdup(&req->pool, cookie, n).base, n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("referrer-policy"), 0, NULL, H2O_STRLIT("no-referrer"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, H2O_STRLIT("/usage"));
    pgw_send_body(req, 303, "text/plain; charset=utf-8", H2O_STRLIT("signed in: /usage\n"));
}

/*
 * /usage is the master key's. A program sends it as x-api-key or Authorization: Bearer; a browser signs in once (the
 * login form sends it as ?key=) and then shows a cookie that proves it (src/serve/auth.c). The path is registered
 * without the dispatcher's authentication step, which knows no cookies: the checks here give the same 401 and 403.
 */
int pgw_handle_usage(pgw_request_t *r)
{
    h2o_req_t *req = r->req;
    const pgw_key_t *key;
    int html = wants_html(req);
    h2o_iovec_t credential =
        pgw_auth_credential(pgw_req_header(req, H2O_STRLIT("x-api-key")), pgw_req_header(req, H2O_STRLIT("authorization")));
    h2o_iovec_t login = query_param(req, H2O_STRLIT("key"));

    if (credential.base != NULL || login.base != NULL) {
        r->key_name = pgw_auth_identify(r->conf, credential.base != NULL ? credential : login, &key);
        if (r->key_name == NULL) {
            if (html && credential.base == NULL)
                pgw_usage_page_login(r, 1);
            else
                pgw_send_error(req, 401, PGW_ERR_AUTHENTICATION, "invalid API key");
            return 0;
        }
    } else if (pgw_auth_cookie_check(r->conf, session_cookie(req), pgw_now_ms() / 1000)) {
        r->key_name = "master";
    } else {
        if (html)
            pgw_usage_page_login(r, 0);
        else
            pgw_send_error(req, 401, PGW_ERR_AUTHENTICATION, "missing API key: send it as x-api-key or Authorization: Bearer");
        return 0;
    }
    if (strcmp(r->key_name, "master") != 0) {
        pgw_send_error(req, 403, PGW_ERR_PERMISSION, "only the master key may read /usage");
        return 0;
    }
    if (credential.base == NULL && login.base != NULL) {
        sign_in(r);
        return 0;
    }
    if (html && pgw_store_get() != NULL) {
        pgw_usage_page_send(r);
        return 0;
    }
    if (pgw_store_get() == NULL) {
        pgw_metrics_t *all[pgw_server->num_workers];
        for (unsigned i = 0; i != pgw_server->num_workers; ++i)
            all[i] = pgw_server->workers[i].metrics;
        h2o_buffer_t *buf;
        h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
        pgw_metrics_render_usage(all, pgw_server->num_workers, pgw_server->started_at, pgw_now_ms(), &buf);
        append_sessions(&buf);
        pgw_send_body(req, 200, "application/json", buf->bytes, buf->size);
        h2o_buffer_dispose(&buf);
        return 0;
    }
    pgw_usage_run(r, render_json, NULL);
    return 0;
}
