/* poe-gateway: MIT licence. GET /v1/models: the configured model names, in Anthropic's or OpenAI's list shape. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/errors.h"
#include "common/json.h"
#include "config/route_match.h"
#include "serve/server.h"
#include "handlers/handlers.h"

#define DEFAULT_ANTHROPIC_LIMIT 20
#define MAX_LIMIT 1000

/* Finds `name=` in the query string and returns its value (not decoded: model ids need no escaping). */
static h2o_iovec_t query_param(h2o_req_t *req, const char *name, size_t name_len)
{
    if (req->query_at == SIZE_MAX)
        return h2o_iovec_init(NULL, 0);
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', end - p);
        if (amp == NULL)
            amp = end;
        if ((size_t)(amp - p) > name_len && memcmp(p, name, name_len) == 0 && p[name_len] == '=')
            return h2o_iovec_init(p + name_len + 1, amp - p - name_len - 1);
        p = amp + 1;
    }
    return h2o_iovec_init(NULL, 0);
}

/* Parses ?limit=; returns 0 with *limit set (or untouched when absent), -1 after sending a 400. */
static int parse_limit(pgw_request_t *r, size_t *limit)
{
    h2o_iovec_t v = query_param(r->req, H2O_STRLIT("limit"));
    if (v.base == NULL)
        return 0;
    size_t n = 0;
    if (v.len == 0 || v.len > 6)
        goto Bad;
    for (size_t i = 0; i != v.len; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            goto Bad;
        n = n * 10 + (v.base[i] - '0');
    }
    if (n < 1 || n > MAX_LIMIT)
        goto Bad;
    *limit = n;
    return 0;
Bad:
    pgw_send_error(r->req, 400, PGW_ERR_INVALID_REQUEST, "limit: expected an integer from 1 to %d", MAX_LIMIT);
    return -1;
}

static int wants_anthropic_shape(h2o_req_t *req)
{
    return pgw_req_header(req, H2O_STRLIT("anthropic-version")).base != NULL;
}

static void append_model(h2o_buffer_t **buf, const char *id, size_t id_len, int anthropic, const char *created_at,
                         unsigned long long created)
{
    if (anthropic) {
        pgw_buf_append_lit(buf, "{\"type\":\"model\",\"id\":");
        pgw_json_append_string(buf, id, id_len);
        pgw_buf_append_lit(buf, ",\"display_name\":");
        pgw_json_append_string(buf, id, id_len);
        pgw_buf_append_lit(buf, ",\"created_at\":");
        pgw_json_append_string(buf, created_at, strlen(created_at));
        pgw_buf_append_lit(buf, "}");
    } else {
        pgw_buf_append_lit(buf, "{\"id\":");
        pgw_json_append_string(buf, id, id_len);
        pgw_buf_append_lit(buf, ",\"object\":\"model\",\"created\":");
        pgw_json_append_int(buf, (long long)created);
        pgw_buf_append_lit(buf, ",\"owned_by\":\"poe-gateway\"}");
    }
}

static void format_created(char *created_at, size_t size, unsigned long long *created)
{
    time_t t = (time_t)(pgw_server->started_at / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created_at, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    *created = (unsigned long long)t;
}

static void send_buffer(pgw_request_t *r, h2o_buffer_t **buf)
{
    pgw_send_body(r->req, 200, "application/json", (*buf)->bytes, (*buf)->size);
    h2o_buffer_dispose(buf);
}

/* Index of the listable (non-wildcard) route named `id`, or -1. */
static ssize_t find_listed(const pgw_config_t *conf, h2o_iovec_t id)
{
    for (size_t i = 0; i != conf->num_routes; ++i)
        if (!conf->routes[i].is_wildcard && h2o_memis(id.base, id.len, conf->routes[i].model_name, strlen(conf->routes[i].model_name)))
            return (ssize_t)i;
    return -1;
}

int pgw_handle_models(pgw_request_t *r)
{
    const pgw_config_t *conf = r->conf;
    int anthropic = wants_anthropic_shape(r->req);
    size_t limit = anthropic ? DEFAULT_ANTHROPIC_LIMIT : SIZE_MAX;
    char created_at[32];
    unsigned long long created;

    if (parse_limit(r, &limit) != 0)
        return 0;
    format_created(created_at, sizeof(created_at), &created);

    /* Anthropic pagination: after_id / before_id are ids of the listed models. */
    size_t begin = 0, end = conf->num_routes;
    h2o_iovec_t after = query_param(r->req, H2O_STRLIT("after_id")), before = query_param(r->req, H2O_STRLIT("before_id"));
    if (after.base != NULL || before.base != NULL) {
        ssize_t at = find_listed(conf, after.base != NULL ? after : before);
        if (at < 0) {
            pgw_send_error(r->req, 400, PGW_ERR_INVALID_REQUEST, "%s: no such model",
                           after.base != NULL ? "after_id" : "before_id");
            return 0;
        }
        if (after.base != NULL)
            begin = (size_t)at + 1;
        else
            end = (size_t)at;
    }
    /* with before_id the page is the `limit` listed models just before it */
    if (before.base != NULL && after.base == NULL) {
        size_t count = 0, i = end;
        while (i != begin && count < limit)
            if (!conf->routes[--i].is_wildcard)
                ++count;
        begin = i;
    }

    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_buf_append_str(&buf, anthropic ? "{\"data\":[" : "{\"object\":\"list\",\"data\":[");
    const char *first = NULL, *last = NULL;
    size_t count = 0;
    int has_more = 0;
    for (size_t i = begin; i != end; ++i) {
        const pgw_route_t *route = conf->routes + i;
        if (route->is_wildcard)
            continue;
        if (count == limit) {
            has_more = 1;
            break;
        }
        if (count++ != 0)
            pgw_buf_append_lit(&buf, ",");
        append_model(&buf, route->model_name, strlen(route->model_name), anthropic, created_at, created);
        if (first == NULL)
            first = route->model_name;
        last = route->model_name;
    }
    pgw_buf_append_lit(&buf, "]");
    if (anthropic) {
        pgw_buf_append_str(&buf, has_more ? ",\"has_more\":true,\"first_id\":" : ",\"has_more\":false,\"first_id\":");
        if (first != NULL)
            pgw_json_append_string(&buf, first, strlen(first));
        else
            pgw_buf_append_lit(&buf, "null");
        pgw_buf_append_lit(&buf, ",\"last_id\":");
        if (last != NULL)
            pgw_json_append_string(&buf, last, strlen(last));
        else
            pgw_buf_append_lit(&buf, "null");
    }
    pgw_buf_append_lit(&buf, "}");
    send_buffer(r, &buf);
    return 0;
}

/* GET /v1/models/{id}: a configured name, or any name a wildcard route would serve; never a pattern itself. */
int pgw_handle_model(pgw_request_t *r)
{
    h2o_iovec_t id = h2o_iovec_init(r->req->path_normalized.base + sizeof("/v1/models/") - 1,
                                    r->req->path_normalized.len - (sizeof("/v1/models/") - 1));
    char created_at[32];
    unsigned long long created;

    /* "claude-*" matches the claude-* route's own pattern, but a pattern is not a model: no listed name holds a '*' */
    if (memchr(id.base, '*', id.len) != NULL) {
        pgw_send_error(r->req, 404, PGW_ERR_NOT_FOUND, "model %s is not configured: a wildcard route's pattern is not a model",
                       pgw_error_quote(&r->req->pool, id.base, id.len));
        return 0;
    }
    if (memchr(id.base, '/', id.len) != NULL || pgw_config_find_route(r->conf, id.base, id.len) == NULL) {
        pgw_send_error(r->req, 404, PGW_ERR_NOT_FOUND, "model %s is not configured",
                       pgw_error_quote(&r->req->pool, id.base, id.len));
        return 0;
    }
    format_created(created_at, sizeof(created_at), &created);
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    append_model(&buf, id.base, id.len, wants_anthropic_shape(r->req), created_at, created);
    send_buffer(r, &buf);
    return 0;
}
