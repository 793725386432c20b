/* poe-gateway: MIT licence. GET /v1/models: the configured model names, in Anthropic's or OpenAI's list shape, with
 * a picker alias for each name Claude Code's model picker would drop (docs/request-path.md#models). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/errors.h"
#include "common/json.h"
#include "config/route_match.h"
#include "upstream/catalog.h"
#include "serve/server.h"
#include "handlers/handlers.h"

#define DEFAULT_ANTHROPIC_LIMIT 20
#define MAX_LIMIT 1000
#define PGW_MAX_ALIAS 512 /* a longer alias is not listed (a client's model name may be at most 255 bytes anyway) */

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

/*
 * The catalog that describes a route's bots: an openai/ route's own; for an anthropic/ route, the one fetched for the
 * same host's `/v1` base, when an openai/ route registered it. With a reference taken, or NULL.
 */
static pgw_catalog_t *route_catalog(const pgw_route_t *route)
{
    char base[1024];
    size_t len;
    if (route->api_base == NULL)
        return NULL;
    if (route->kind == PGW_ROUTE_OPENAI)
        return pgw_catalogs_get(route->api_base);
    len = strlen(route->api_base);
    if (len >= 3 && strcmp(route->api_base + len - 3, "/v1") == 0)
        return pgw_catalogs_get(route->api_base);
    if (len + sizeof("/v1") > sizeof(base))
        return NULL;
    snprintf(base, sizeof(base), "%s/v1", route->api_base);
    return pgw_catalogs_get(base);
}

/*
 * One model in Anthropic's shape: `display_name` names the Poe bot and the route kind, since that is what the picker
 * shows; `description` says the same at length; `max_input_tokens` and `max_tokens` (the Models API's names, which
 * Claude Code reads for a model's context window and output limit) come from the route's model_info, else Poe's catalog,
 * and are left out, not null, when neither gives one. docs/request-path.md#models.
 */
static void append_anthropic_model(h2o_buffer_t **buf, const char *id, size_t id_len, const pgw_route_t *route,
                                   const char *created_at)
{
    char upstream[512];
    int ulen = pgw_route_upstream_model(route, id, id_len, upstream, sizeof(upstream));
    pgw_catalog_t *c = route_catalog(route);
    const pgw_bot_t *bot = c != NULL && ulen > 0 ? pgw_catalog_find(c, upstream, (size_t)ulen) : NULL;
    const char *bot_name = bot != NULL ? pgw_catalog_display_name(c, bot) : ulen > 0 ? upstream : route->model_name;
    const char *bot_id = bot != NULL ? bot->id : bot_name;
    int translated = route->kind == PGW_ROUTE_OPENAI;

    /* names come from the configuration and the catalog, both parsed as UTF-8: escaped, never cut */
    pgw_buf_append_lit(buf, "{\"type\":\"model\",\"id\":");
    pgw_json_append_string(buf, id, id_len);
    pgw_buf_append_lit(buf, ",\"display_name\":\"");
    pgw_json_append_escaped(buf, bot_name, strlen(bot_name));
    pgw_buf_append_str(buf, translated ? " via Poe (translated)\"" : " via Poe (pass-through)\"");
    pgw_buf_append_lit(buf, ",\"created_at\":");
    pgw_json_append_string(buf, created_at, strlen(created_at));
    if (translated) {
        pgw_buf_append_lit(buf, ",\"description\":\"Poe bot ");
        pgw_json_append_escaped(buf, bot_id, strlen(bot_id));
        pgw_buf_append_lit(buf, ": the gateway translates Anthropic Messages to chat/completions (route ");
    } else {
        pgw_buf_append_lit(buf, ",\"description\":\"Poe's Anthropic-compatible /v1/messages, model ");
        pgw_json_append_escaped(buf, bot_id, strlen(bot_id));
        pgw_buf_append_lit(buf, ", passed through unchanged (route ");
    }
    pgw_json_append_escaped(buf, route->model_name, strlen(route->model_name));
    pgw_buf_append_lit(buf, ")\"");
    /* the route's own model_info.max_input_tokens, which also decides its context_window_fallbacks, wins */
    long long window = route->max_input_tokens > 0 ? route->max_input_tokens : bot != NULL ? bot->context_length : 0;
    if (window > 0) {
        pgw_buf_append_lit(buf, ",\"max_input_tokens\":");
        pgw_json_append_int(buf, window);
    }
    if (bot != NULL && bot->max_output_tokens > 0) {
        pgw_buf_append_lit(buf, ",\"max_tokens\":");
        pgw_json_append_int(buf, bot->max_output_tokens);
    }
    pgw_buf_append_lit(buf, "}");
    pgw_catalog_release(c);
}

static void append_model(h2o_buffer_t **buf, const char *id, size_t id_len, const pgw_route_t *route, int anthropic,
                         const char *created_at, unsigned long long created)
{
    if (anthropic) {
        append_anthropic_model(buf, id, id_len, route, created_at);
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

/*
 * The list is every exact route's model_name, in file order, each followed by its picker alias when it has one: entry
 * 2 * i is route i's name, entry 2 * i + 1 its alias. Writes entry `k`'s id (its route's name, or the alias into
 * `alias`) and returns its route, or NULL when there is no such entry (a wildcard route, a route without an alias).
 */
static const pgw_route_t *entry_at(const pgw_config_t *conf, size_t k, char *alias, size_t alias_size, const char **id,
                                   size_t *id_len)
{
    const pgw_route_t *route = conf->routes + k / 2;
    if (route->is_wildcard)
        return NULL;
    if (k % 2 == 0) {
        *id = route->model_name;
        *id_len = strlen(route->model_name);
    } else if ((*id_len = pgw_route_picker_alias(conf, route, alias, alias_size)) != 0) {
        *id = alias;
    } else {
        return NULL;
    }
    return route;
}

/* Index of the listed entry whose id is `id`, or -1. */
static ssize_t find_listed(const pgw_config_t *conf, h2o_iovec_t id)
{
    char alias[PGW_MAX_ALIAS];
    const char *name;
    size_t len;
    for (size_t k = 0; k != 2 * conf->num_routes; ++k)
        if (entry_at(conf, k, alias, sizeof(alias), &name, &len) != NULL && h2o_memis(id.base, id.len, name, len))
            return (ssize_t)k;
    return -1;
}

int pgw_handle_models(pgw_request_t *r)
{
    const pgw_config_t *conf = r->conf;
    int anthropic = wants_anthropic_shape(r->req);
    size_t limit = anthropic ? DEFAULT_ANTHROPIC_LIMIT : SIZE_MAX, num_entries = 2 * conf->num_routes;
    char created_at[32], alias[PGW_MAX_ALIAS];
    unsigned long long created;
    const char *name;
    size_t name_len;

    if (parse_limit(r, &limit) != 0)
        return 0;
    format_created(created_at, sizeof(created_at), &created);

    /* Anthropic pagination: after_id / before_id are ids of the listed models. */
    size_t begin = 0, end = num_entries;
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
        size_t count = 0, k = end;
        while (k != begin && count < limit)
            if (entry_at(conf, --k, alias, sizeof(alias), &name, &name_len) != NULL)
                ++count;
        begin = k;
    }

    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_buf_append_str(&buf, anthropic ? "{\"data\":[" : "{\"object\":\"list\",\"data\":[");
    size_t first = SIZE_MAX, last = SIZE_MAX, count = 0;
    int has_more = 0;
    for (size_t k = begin; k != end; ++k) {
        const pgw_route_t *route = entry_at(conf, k, alias, sizeof(alias), &name, &name_len);
        if (route == NULL)
            continue;
        if (count == limit) {
            has_more = 1;
            break;
        }
        if (count++ != 0)
            pgw_buf_append_lit(&buf, ",");
        append_model(&buf, name, name_len, route, anthropic, created_at, created);
        if (first == SIZE_MAX)
            first = k;
        last = k;
    }
    pgw_buf_append_lit(&buf, "]");
    if (anthropic) {
        pgw_buf_append_str(&buf, has_more ? ",\"has_more\":true,\"first_id\":" : ",\"has_more\":false,\"first_id\":");
        if (first != SIZE_MAX && entry_at(conf, first, alias, sizeof(alias), &name, &name_len) != NULL)
            pgw_json_append_string(&buf, name, name_len);
        else
            pgw_buf_append_lit(&buf, "null");
        pgw_buf_append_lit(&buf, ",\"last_id\":");
        if (last != SIZE_MAX && entry_at(conf, last, alias, sizeof(alias), &name, &name_len) != NULL)
            pgw_json_append_string(&buf, name, name_len);
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
    const pgw_route_t *route;
    if (memchr(id.base, '/', id.len) != NULL || (route = pgw_config_find_route(r->conf, id.base, id.len)) == NULL) {
        pgw_send_error(r->req, 404, PGW_ERR_NOT_FOUND, "model %s is not configured",
                       pgw_error_quote(&r->req->pool, id.base, id.len));
        return 0;
    }
    format_created(created_at, sizeof(created_at), &created);
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    append_model(&buf, id.base, id.len, route, wants_anthropic_shape(r->req), created_at, created);
    send_buffer(r, &buf);
    return 0;
}
