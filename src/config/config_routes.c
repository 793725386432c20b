/* poe-gateway: MIT licence. model_list and router_settings: the routes, one per model_list entry.
 *
 * Each entry gives a client-facing model_name (with '*' wildcards or not) and litellm_params, read into one
 * pgw_route_t. litellm_params is driven by one table, params[]: each key once, with its type, the route field it fills
 * and its bounds; on_param converts a value by its type. litellm_params.model's prefix chooses the route kind:
 * openai/<bot> (translation) or anthropic/<model> (pass-through). Timeouts and retries a route leaves unset wait for
 * the end of the file, where pgw_loader_finish_routes applies router_settings (which may come after model_list) or the
 * built-in defaults; it also warns about a wildcard route that an earlier wildcard always catches first. The rules are
 * docs/config.md#routes.
 */
#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <h2o/socket.h>
#include <openssl/sha.h>
#include "config/config_loader.h"
#include "common/json.h"
#include "common/log.h"
#include "config/route_match.h"
#include "config/extra_body.h"

#define MODULE_NAME "config"

/* litellm_params: one table entry per key, as gateway_keys[] in src/config/config_gateway.c */

enum en_param_type_t {
    PARAM_MODEL,      /* openai/<bot> or anthropic/<model>: the route's kind and upstream_model */
    PARAM_API_BASE,   /* http(s) URL or os.environ/NAME; read after the loop, since the default depends on the kind */
    PARAM_API_KEY,    /* literal or os.environ/NAME: api_key and api_key_env */
    PARAM_INT,        /* int, between min and max */
    PARAM_SECONDS,    /* double, > 0 */
    PARAM_BOOL,       /* int, 0 or 1 */
    PARAM_TLS_VERIFY, /* a PARAM_BOOL that warns when false */
    PARAM_HEADERS,    /* extra_headers: header name to literal or os.environ/NAME */
    PARAM_BODY,       /* extra_body: a mapping, kept as JSON object members */
};

static const struct st_param_t {
    const char *name;
    enum en_param_type_t type;
    size_t offset;      /* the field of pgw_route_t, for the types that fill one */
    long long min, max; /* PARAM_INT bounds */
} params[] = {
    {"model", PARAM_MODEL},
    {"api_base", PARAM_API_BASE},
    {"api_key", PARAM_API_KEY},
    {"rpm", PARAM_INT, offsetof(pgw_route_t, rpm), 0, INT_MAX},
    {"timeout", PARAM_SECONDS, offsetof(pgw_route_t, timeout)},
    {"stream_timeout", PARAM_SECONDS, offsetof(pgw_route_t, stream_timeout)},
    {"max_retries", PARAM_INT, offsetof(pgw_route_t, max_retries), 0, 10},
    {"extra_headers", PARAM_HEADERS},
    {"ssl_verify", PARAM_TLS_VERIFY, offsetof(pgw_route_t, ssl_verify)},
    {"http2_prior_knowledge", PARAM_BOOL, offsetof(pgw_route_t, h2c)},
    {"extra_body", PARAM_BODY},
    {"echo_reasoning", PARAM_BOOL, offsetof(pgw_route_t, echo_reasoning)},
    {"minimal_schema", PARAM_BOOL, offsetof(pgw_route_t, minimal_schema)},
    {"buffer_tools", PARAM_BOOL, offsetof(pgw_route_t, buffer_tools)},
};

static pgw_route_t *add_route(pgw_loader_t *l, yaml_node_t *entry)
{
    pgw_config_t *conf = l->conf;
    conf->routes = xrealloc(conf->routes, (conf->num_routes + 1) * sizeof(conf->routes[0]));
    pgw_route_t *route = conf->routes + conf->num_routes++;
    *route = (pgw_route_t){.timeout = -1,
                           .stream_timeout = PGW_DEFAULT_STREAM_TIMEOUT,
                           .max_retries = -1,
                           .ssl_verify = 1,
                           .line = (unsigned)entry->start_mark.line + 1,
                           .column = (unsigned)entry->start_mark.column + 1};
    return route;
}

static int on_provider_model(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    static const struct {
        const char *prefix;
        pgw_route_kind_t kind;
    } providers[] = {{"openai/", PGW_ROUTE_OPENAI}, {"anthropic/", PGW_ROUTE_ANTHROPIC}};
    const char *s = pgw_loader_scalar(l, node, "litellm_params.model");
    const char *slash;

    if (s == NULL)
        return -1;
    for (size_t i = 0; i != sizeof(providers) / sizeof(providers[0]); ++i) {
        size_t plen = strlen(providers[i].prefix);
        if (strncmp(s, providers[i].prefix, plen) == 0) {
            if (s[plen] == '\0')
                return pgw_loader_error(l, node, "litellm_params.model: empty model name after '%s'", providers[i].prefix);
            route->kind = providers[i].kind;
            route->upstream_model = xstrdup(s + plen);
            return 0;
        }
    }
    if ((slash = strchr(s, '/')) == NULL)
        return pgw_loader_error(l, node, "litellm_params.model '%s' has no provider prefix (use openai/<bot> or anthropic/<model>)",
                                s);
    return pgw_loader_error(l, node, "litellm_params.model: unsupported provider '%.*s/' (use openai/<bot> or anthropic/<model>)",
                            (int)(slash - s), s);
}

/* Header names are RFC 9110 tokens; values may not hold CR, LF or NUL. */
static int is_header_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s != '\0'; ++s)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return 0;
    return 1;
}

static int on_extra_headers(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_loader_expect_mapping(l, node, "extra_headers") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    route->extra_headers = xrealloc(NULL, num * sizeof(route->extra_headers[0]));
    for (size_t i = 0; i != num; ++i) {
        const char *name = (const char *)pairs[i].key->data.scalar.value;
        char *value, *env_name;
        if (!is_header_name(name))
            return pgw_loader_error(l, pairs[i].key, "extra_headers: '%s' is not a valid header name", name);
        for (size_t j = 0; j != route->num_extra_headers; ++j)
            if (strcasecmp(route->extra_headers[j].name, name) == 0)
                return pgw_loader_error(l, pairs[i].key, "extra_headers: duplicate header '%s'", name);
        if (pgw_yaml_is_null(pairs[i].value)) {
            value = xstrdup("");
            env_name = NULL;
        } else if (pgw_loader_env_value(l, pairs[i].value, "extra_headers value", &value, &env_name) != 0) {
            return -1;
        } else if (value == NULL && env_name == NULL) {
            value = xstrdup(""); /* an empty literal */
        }
        route->extra_headers[route->num_extra_headers++] = (pgw_header_t){xstrdup(name), value};
        if (value != NULL && strpbrk(value, "\r\n") != NULL) {
            int ret = env_name != NULL
                          ? pgw_loader_error(l, pairs[i].value, "extra_headers: $%s holds a line break", env_name)
                          : pgw_loader_error(l, pairs[i].value, "extra_headers: the value of '%s' holds a line break", name);
            free(env_name);
            return ret;
        }
        free(env_name);
    }
    return 0;
}

/* extra_body: a YAML mapping written out as JSON object members, with src/common/json.c's string writer */

#define MAX_EXTRA_BODY (64 * 1024)

struct st_json_text_t {
    h2o_buffer_t *buf;
    int too_large; /* the text would pass MAX_EXTRA_BODY: nothing more is written and the load fails */
};

/* Checks that `len` more bytes (at least: escapes only lengthen a string) stay within the cap. YAML aliases can
 * multiply a small file, so growth stops at the cap rather than after the damage. */
static int jt_room(struct st_json_text_t *t, size_t len)
{
    if (!t->too_large && t->buf->size + len > MAX_EXTRA_BODY)
        t->too_large = 1;
    return !t->too_large;
}

static void jt_append(struct st_json_text_t *t, const char *s, size_t len)
{
    if (jt_room(t, len))
        pgw_buf_append(&t->buf, s, len);
}

static void jt_string(struct st_json_text_t *t, const char *s, size_t len)
{
    if (jt_room(t, len + 2))
        pgw_json_append_string(&t->buf, s, len);
}

/* JSON's number grammar exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s)
{
    if (*s == '-')
        ++s;
    if (*s == '0')
        ++s;
    else if (*s >= '1' && *s <= '9')
        while (*s >= '0' && *s <= '9')
            ++s;
    else
        return 0;
    if (*s == '.') {
        ++s;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            ++s;
    }
    if (*s == 'e' || *s == 'E') {
        ++s;
        if (*s == '+' || *s == '-')
            ++s;
        if (!(*s >= '0' && *s <= '9'))
            return 0;
        while (*s >= '0' && *s <= '9')
            ++s;
    }
    return *s == '\0';
}

/* A plain YAML scalar that reads as a JSON number, boolean or null is written as one; anything else as a string. */
static void jt_scalar(struct st_json_text_t *t, const yaml_node_t *node)
{
    const char *s = (const char *)node->data.scalar.value;
    size_t len = node->data.scalar.length;
    if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
            jt_append(t, s, len);
            return;
        }
        if (pgw_yaml_is_null(node)) {
            jt_append(t, "null", 4);
            return;
        }
        if (is_json_number(s)) {
            jt_append(t, s, len);
            return;
        }
    }
    jt_string(t, s, len);
}

static int jt_node(pgw_loader_t *l, struct st_json_text_t *t, yaml_node_t *node, int depth, int members_only)
{
    if (depth > 32)
        return pgw_loader_error(l, node, "extra_body is nested too deeply");
    if (t->too_large)
        return 0; /* the caller reports it; walking on would cost as much as the aliases multiply */
    switch (node->type) {
    case YAML_SCALAR_NODE:
        jt_scalar(t, node);
        return 0;
    case YAML_SEQUENCE_NODE:
        jt_append(t, "[", 1);
        for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item) {
            if (item != node->data.sequence.items.start)
                jt_append(t, ",", 1);
            if (jt_node(l, t, pgw_loader_node(l, *item), depth + 1, 0) != 0)
                return -1;
        }
        jt_append(t, "]", 1);
        return 0;
    case YAML_MAPPING_NODE: {
        pgw_loader_pair_t *pairs;
        size_t num;
        if (pgw_loader_pairs(l, node, &pairs, &num) != 0)
            return -1;
        if (!members_only)
            jt_append(t, "{", 1);
        for (size_t i = 0; i != num; ++i) {
            if (pairs[i].key->type != YAML_SCALAR_NODE)
                return pgw_loader_error(l, pairs[i].key, "extra_body keys must be scalars");
            if (i != 0)
                jt_append(t, ",", 1);
            jt_string(t, (const char *)pairs[i].key->data.scalar.value, pairs[i].key->data.scalar.length);
            jt_append(t, ":", 1);
            if (jt_node(l, t, pairs[i].value, depth + 1, 0) != 0)
                return -1;
        }
        if (!members_only)
            jt_append(t, "}", 1);
        return 0;
    }
    default:
        return pgw_loader_error(l, node, "extra_body holds an unsupported node");
    }
}

static int on_extra_body(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    struct st_json_text_t text = {NULL};
    int ret = -1;

    if (pgw_loader_expect_mapping(l, node, "extra_body") != 0)
        return -1;
    h2o_buffer_init(&text.buf, &h2o_socket_buffer_prototype);
    if (jt_node(l, &text, node, 0, 1) != 0)
        goto Exit;
    if (text.too_large) {
        pgw_loader_error(l, node, "extra_body is larger than %d bytes once written out", MAX_EXTRA_BODY);
        goto Exit;
    }
    free(route->extra_body);
    free(route->extra_body_members);
    route->extra_body = text.buf->size != 0 ? xstrndup(text.buf->bytes, text.buf->size) : NULL;
    /* parsed once here for the translator, not again on every request */
    route->extra_body_members = route->extra_body != NULL ? pgw_extra_body_parse(route->extra_body, strlen(route->extra_body)) : NULL;
    if (route->extra_body != NULL && route->extra_body_members == NULL) { /* what jt_node writes always parses; checked all the same */
        pgw_loader_error(l, node, "extra_body does not read back as JSON object members");
        goto Exit;
    }
    ret = 0;
Exit:
    h2o_buffer_dispose(&text.buf);
    return ret;
}

/* what on_litellm_params learns in its loop and settles after it */
struct st_params_seen_t {
    yaml_node_t *model;
    yaml_node_t *api_base;
};

static int on_param(pgw_loader_t *l, pgw_route_t *route, const struct st_param_t *k, yaml_node_t *key, yaml_node_t *value,
                    struct st_params_seen_t *seen)
{
    void *field = (char *)route + k->offset;
    long long n;

    switch (k->type) {
    case PARAM_MODEL:
        seen->model = value;
        return on_provider_model(l, route, value);
    case PARAM_API_BASE:
        seen->api_base = value;
        return 0;
    case PARAM_API_KEY:
        return pgw_loader_env_value(l, value, k->name, &route->api_key, &route->api_key_env);
    case PARAM_INT:
        if (pgw_loader_int(l, value, k->name, k->min, k->max, &n) != 0)
            return -1;
        *(int *)field = (int)n;
        return 0;
    case PARAM_SECONDS:
        return pgw_loader_seconds(l, value, k->name, 0, field);
    case PARAM_BOOL:
        return pgw_loader_bool(l, value, k->name, field);
    case PARAM_TLS_VERIFY:
        if (pgw_loader_bool(l, value, k->name, field) != 0)
            return -1;
        if (!*(int *)field)
            pgw_log_warn(MODULE_NAME, "%s:%zu:%zu: route '%s' does not verify the upstream's TLS certificate", l->path,
                         key->start_mark.line + 1, key->start_mark.column + 1, route->model_name);
        return 0;
    case PARAM_HEADERS:
        return on_extra_headers(l, route, value);
    case PARAM_BODY:
        return on_extra_body(l, route, value);
    }
    assert(!"unknown param type");
    return -1;
}

/* api_base: a URL without its trailing '/', or the kind's default when absent (or an empty literal) */
static int on_api_base(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *api_base)
{
    if (api_base != NULL) {
        char *env_name;
        if (pgw_loader_env_value(l, api_base, "api_base", &route->api_base, &env_name) != 0)
            return -1;
        if (route->api_base != NULL && !pgw_loader_is_http_url(route->api_base)) {
            int ret = env_name != NULL
                          ? pgw_loader_error(l, api_base, "api_base ($%s) must start with http:// or https://", env_name)
                          : pgw_loader_error(l, api_base, "api_base must start with http:// or https://");
            free(env_name);
            return ret;
        }
        if (route->api_base != NULL)
            pgw_loader_strip_slashes(route->api_base);
        else if (env_name == NULL) /* an empty literal counts as absent */
            api_base = NULL;
        free(env_name);
    }
    if (api_base == NULL)
        route->api_base =
            xstrdup(route->kind == PGW_ROUTE_ANTHROPIC ? PGW_DEFAULT_ANTHROPIC_API_BASE : PGW_DEFAULT_OPENAI_API_BASE);
    return 0;
}

static int on_litellm_params(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num, k;
    struct st_params_seen_t seen = {NULL};

    if (pgw_loader_expect_mapping(l, node, "litellm_params") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        for (k = 0; k != sizeof(params) / sizeof(params[0]); ++k)
            if (pgw_yaml_key_is(pairs[i].key, params[k].name))
                break;
        if (k == sizeof(params) / sizeof(params[0])) {
            pgw_loader_warn_unknown(l, pairs[i].key, "litellm_params");
        } else if (!pgw_yaml_is_null(pairs[i].value) && on_param(l, route, params + k, pairs[i].key, pairs[i].value, &seen) != 0) {
            return -1;
        }
    }
    if (seen.model == NULL)
        return pgw_loader_error(l, node, "model '%s' has no litellm_params.model", route->model_name);
    return on_api_base(l, route, seen.api_base);
}

/* model_info: LiteLLM's facts about a model; the gateway reads max_input_tokens, for context_window_fallbacks. */
static int on_model_info(pgw_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_yaml_is_null(node))
        return 0;
    if (pgw_loader_expect_mapping(l, node, "model_info") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        if (pgw_yaml_key_is(pairs[i].key, "max_input_tokens")) {
            if (!pgw_yaml_is_null(pairs[i].value) &&
                pgw_loader_int(l, pairs[i].value, "model_info.max_input_tokens", 1, 1000000000000LL, &route->max_input_tokens) != 0)
                return -1;
        } else {
            pgw_loader_warn_unknown(l, pairs[i].key, "model_info");
        }
    }
    return 0;
}

static int on_model_entry(pgw_loader_t *l, yaml_node_t *entry)
{
    pgw_config_t *conf = l->conf;
    pgw_loader_pair_t *pairs;
    size_t num;
    yaml_node_t *name_node = NULL, *params = NULL, *info = NULL;
    const char *name;
    pgw_route_t *route;

    if (pgw_loader_expect_mapping(l, entry, "a model_list entry") != 0 || pgw_loader_pairs(l, entry, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        if (pgw_yaml_key_is(pairs[i].key, "model_name")) {
            name_node = pairs[i].value;
        } else if (pgw_yaml_key_is(pairs[i].key, "litellm_params")) {
            params = pairs[i].value;
        } else if (pgw_yaml_key_is(pairs[i].key, "model_info")) {
            info = pairs[i].value;
        } else {
            pgw_loader_warn_unknown(l, pairs[i].key, "model_list entry");
        }
    }

    if (name_node == NULL || pgw_yaml_is_null(name_node))
        return pgw_loader_error(l, entry, "model_list entry has no model_name");
    if ((name = pgw_loader_scalar(l, name_node, "model_name")) == NULL)
        return -1;
    if (*name == '\0')
        return pgw_loader_error(l, name_node, "model_name must not be empty");
    if (strchr(name, '*') == NULL) {
        for (size_t i = 0; i != conf->num_routes; ++i)
            if (!conf->routes[i].is_wildcard && strcmp(conf->routes[i].model_name, name) == 0)
                return pgw_loader_error(l, name_node, "duplicate model_name '%s' (first at line %u)", name, conf->routes[i].line);
    }

    route = add_route(l, entry);
    route->model_name = xstrdup(name);
    route->is_wildcard = strchr(name, '*') != NULL;

    if (info != NULL && on_model_info(l, route, info) != 0)
        return -1;
    if (params == NULL || pgw_yaml_is_null(params))
        return pgw_loader_error(l, entry, "model '%s' has no litellm_params.model", name);
    return on_litellm_params(l, route, params);
}

int pgw_loader_on_model_list(pgw_loader_t *l, yaml_node_t *node)
{
    if (pgw_yaml_is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return pgw_loader_error(l, node, "model_list must be a sequence");
    for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item)
        if (on_model_entry(l, pgw_loader_node(l, *item)) != 0)
            return -1;
    return 0;
}

/* router_settings */

int pgw_loader_on_router_settings(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num;
    long long n;

    if (pgw_yaml_is_null(node))
        return 0;
    if (pgw_loader_expect_mapping(l, node, "router_settings") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        if (pgw_yaml_key_is(key, "num_retries")) {
            if (pgw_yaml_is_null(value))
                continue;
            if (pgw_loader_int(l, value, "router_settings.num_retries", 0, 10, &n) != 0)
                return -1;
            l->router_num_retries = (int)n;
        } else if (pgw_yaml_key_is(key, "timeout")) {
            if (pgw_yaml_is_null(value))
                continue;
            if (pgw_loader_seconds(l, value, "router_settings.timeout", 0, &l->router_timeout) != 0)
                return -1;
        } else {
            int ret = pgw_loader_on_fallback_key(l, "router_settings", key, value);
            if (ret < 0)
                return -1;
            if (ret > 0)
                pgw_loader_warn_unknown(l, key, "router_settings");
        }
    }
    return 0;
}

/* once the file is read */

void pgw_key_fingerprint(const char *key, char out[16])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (key == NULL) {
        strcpy(out, "-");
        return;
    }
    SHA256((const unsigned char *)key, strlen(key), md);
    for (int i = 0; i != 6; ++i)
        sprintf(out + i * 2, "%02x", md[i]);
}

void pgw_loader_finish_routes(pgw_loader_t *l)
{
    pgw_config_t *conf = l->conf;

    if (conf->num_routes == 0)
        pgw_log_warn(MODULE_NAME, "%s: model_list is empty: every model will be refused", l->path);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        pgw_route_t *route = conf->routes + i;
        pgw_key_fingerprint(route->api_key, route->api_key_fp);
        if (route->timeout < 0)
            route->timeout = l->router_timeout >= 0 ? l->router_timeout : PGW_DEFAULT_TIMEOUT;
        if (route->max_retries < 0)
            route->max_retries = l->router_num_retries >= 0 ? l->router_num_retries : PGW_DEFAULT_MAX_RETRIES;
        if (!route->is_wildcard)
            continue;
        /* An earlier pattern that matches this pattern's own text catches every name this one could. */
        for (size_t j = 0; j != i; ++j) {
            const pgw_route_t *earlier = conf->routes + j;
            if (earlier->is_wildcard && pgw_wildcard_match(earlier->model_name, route->model_name, strlen(route->model_name))) {
                pgw_log_warn(MODULE_NAME, "%s:%u:%u: model_name '%s' can never match: '%s' (line %u) comes first", l->path,
                             route->line, route->column, route->model_name, earlier->model_name, earlier->line);
                break;
            }
        }
    }
}
