/* poe-gateway: MIT licence. Loads the LiteLLM-compatible YAML configuration (libyaml) into a plain pgw_config_t. */

/*
 * The file is read whole and parsed with libyaml's document API, which gives a node tree with marks; the walk below
 * then turns that tree into pgw_config_t, so nothing outside the loader ever sees YAML. The walk follows the file's
 * shape: one function per section. This file holds the file, the document, the top level and general_settings; the
 * sections of their own are src/config/config_routes.c (model_list, router_settings), src/config/config_fallbacks.c (the
 * fallback keys of router_settings, and litellm_settings) and src/config/config_gateway.c (gateway:), and
 * what every section uses (errors with positions, merged mappings, value conversions, os.environ/) is
 * src/config/config_loader.c.
 *
 * Rules that hold everywhere:
 * - The first error stops the load and becomes one line "file:line:column: what is wrong" (libyaml's marks are
 *   0-based; messages are 1-based). It points at the offending value, or at the enclosing mapping when a key is
 *   missing. Messages name keys and environment variables, never a key's value.
 * - A key whose value is YAML null (`key:`, `~`, `null`) counts as absent.
 * - Duplicate keys in one mapping are an error (PyYAML would silently keep the last one). YAML merge keys (`<<: *x`,
 *   as LiteLLM configs use to share litellm_params) are honoured: the mapping's own keys win, then earlier sources.
 * - Keys this gateway does not use (LiteLLM's other settings, typos) are ignored with one warning per key and
 *   section, not one per occurrence.
 * - `os.environ/NAME` is resolved at load time. An unset or empty NAME leaves the value NULL and is recorded once in
 *   conf->missing_env; the caller decides whether that is fatal.
 */

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include "config/config_loader.h"
#include "common/log.h"

#define MODULE_NAME "config"
#define MAX_CONFIG_BYTES (16 * 1024 * 1024)

/* general_settings */

static int on_general_settings(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_yaml_is_null(node))
        return 0;
    if (pgw_loader_expect_mapping(l, node, "general_settings") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        if (pgw_yaml_key_is(pairs[i].key, "master_key")) {
            if (pgw_yaml_is_null(pairs[i].value))
                continue;
            if (pgw_loader_env_value(l, pairs[i].value, "master_key", &l->conf->master_key, &l->conf->master_key_env) != 0)
                return -1;
            /* an empty literal counts as absent, so the LITELLM_MASTER_KEY fallback still applies */
            l->have_master_key = l->conf->master_key != NULL || l->conf->master_key_env != NULL;
        } else {
            pgw_loader_warn_unknown(l, pairs[i].key, "general_settings");
        }
    }
    return 0;
}

/* the document */

static int on_root(pgw_loader_t *l, yaml_node_t *root)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_yaml_is_null(root))
        return 0; /* a file holding only comments */
    if (pgw_loader_expect_mapping(l, root, "the top level") != 0 || pgw_loader_pairs(l, root, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        int ret = 0;
        if (pgw_yaml_key_is(key, "model_list")) {
            ret = pgw_loader_on_model_list(l, value);
        } else if (pgw_yaml_key_is(key, "general_settings")) {
            ret = on_general_settings(l, value);
        } else if (pgw_yaml_key_is(key, "router_settings")) {
            ret = pgw_loader_on_router_settings(l, value);
        } else if (pgw_yaml_key_is(key, "litellm_settings")) {
            ret = pgw_loader_on_litellm_settings(l, value);
        } else if (pgw_yaml_key_is(key, "gateway")) {
            ret = pgw_loader_on_gateway(l, value);
        } else {
            pgw_loader_warn_ignored(l, key, "top level", "unsupported section");
        }
        if (ret != 0)
            return -1;
    }
    return 0;
}

/* Applies what can only be decided once the whole file is read. Returns 0, or -1 after an error. */
static int finish(pgw_loader_t *l)
{
    pgw_config_t *conf = l->conf;

    pgw_loader_finish_routes(l);
    if (pgw_loader_finish_fallbacks(l) != 0)
        return -1;

    /* two largest bodies on one connection; eight in the whole gateway, 256 MB with the default max_body_bytes, held for
     * as long as their requests last: far above what a team's Claude Code sessions send (a few MB each), far below what
     * bodies of clients that never finish them could otherwise pile up */
    if (conf->max_body_bytes_per_connection == 0)
        conf->max_body_bytes_per_connection = conf->max_body_bytes > SIZE_MAX / 2 ? SIZE_MAX : 2 * conf->max_body_bytes;
    if (conf->max_body_bytes_in_flight == 0)
        conf->max_body_bytes_in_flight = conf->max_body_bytes > SIZE_MAX / 8 ? SIZE_MAX : 8 * conf->max_body_bytes;

    if (!l->have_master_key) {
        const char *env = pgw_dotenv_getenv("LITELLM_MASTER_KEY");
        free_secret(conf->master_key);
        free(conf->master_key_env);
        conf->master_key = NULL;
        conf->master_key_env = NULL;
        if (env != NULL && *env != '\0') {
            conf->master_key = xstrdup(env);
            conf->master_key_env = xstrdup("LITELLM_MASTER_KEY");
        }
    }
    return 0;
}

static int read_config_file(const char *path, char **buf, size_t *len, char *err, size_t errsz)
{
    FILE *fp;
    int ret = -1;

    *buf = NULL;
    *len = 0;
    if ((fp = fopen(path, "rb")) == NULL) {
        snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        size_t cap = *len + 65536;
        *buf = xrealloc(*buf, cap);
        size_t n = fread(*buf + *len, 1, cap - *len, fp);
        *len += n;
        if (n == 0)
            break;
        if (*len > MAX_CONFIG_BYTES) {
            snprintf(err, errsz, "%s: larger than %d bytes", path, MAX_CONFIG_BYTES);
            goto Exit;
        }
    }
    if (ferror(fp)) {
        snprintf(err, errsz, "%s: cannot read: %s", path, strerror(errno));
        goto Exit;
    }
    ret = 0;
Exit:
    fclose(fp);
    if (ret != 0) {
        free(*buf);
        *buf = NULL;
    }
    return ret;
}

static int syntax_error(pgw_loader_t *l, yaml_parser_t *parser, const char *buf, size_t len)
{
    yaml_mark_t mark = parser->problem_mark;

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    case YAML_READER_ERROR:
        /* the reader reports a byte offset only */
        mark = (yaml_mark_t){0};
        for (size_t i = 0; i != parser->problem_offset && i != len; ++i) {
            if (buf[i] == '\n') {
                ++mark.line;
                mark.column = 0;
            } else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
                ++mark.column;
            }
        }
        break;
    default:
        break;
    }
    if (parser->context != NULL)
        return pgw_loader_error_at_mark(l, mark, "%s (%s at line %zu)", parser->problem, parser->context, parser->context_mark.line + 1);
    return pgw_loader_error_at_mark(l, mark, "%s", parser->problem != NULL ? parser->problem : "invalid YAML");
}

/* LITELLM_PORT, which LiteLLM setups keep in .env beside the master key, is the port when gateway.port does not say
 * (--port > gateway.port > LITELLM_PORT > 4000: docs/config.md#the-listen-port). */
static int litellm_port(pgw_config_t *conf, char *err, size_t errsz)
{
    const char *env = getenv("LITELLM_PORT");
    char *end;
    if (env == NULL || *env == '\0')
        return 0;
    unsigned long v = strtoul(env, &end, 10);
    if (*end != '\0' || v > 65535 || !isdigit((unsigned char)*env)) {
        snprintf(err, errsz, "%s: the environment variable LITELLM_PORT must be a port number (0 to 65535), not %s", conf->path,
                 env);
        return -1;
    }
    conf->port = (unsigned)v;
    return 0;
}

int pgw_config_load(pgw_config_t *conf, const char *path, char *err, size_t errsz)
{
    pgw_loader_t l = {.conf = conf, .path = path, .err = err, .errsz = errsz, .router_timeout = -1, .router_num_retries = -1};
    yaml_parser_t parser;
    yaml_document_t extra;
    int parser_ready = 0, doc_ready = 0, ret = -1;
    char *buf = NULL;
    size_t len;

    memset(conf, 0, sizeof(*conf));
    if (errsz != 0)
        err[0] = '\0';
    conf->path = xstrdup(path);
    conf->host = xstrdup(PGW_DEFAULT_HOST);
    conf->port = PGW_DEFAULT_PORT;
    if (litellm_port(conf, err, errsz) != 0)
        goto Exit;
    conf->max_body_bytes = PGW_DEFAULT_MAX_BODY_BYTES;
    conf->idle_timeout = PGW_DEFAULT_IDLE_TIMEOUT;
    conf->graceful_timeout = PGW_DEFAULT_GRACEFUL_TIMEOUT;
    conf->upstream_rpm = 500;
    conf->queue_timeout = 60;
    conf->redis_timeout = 0.25;
    conf->allowed_fails = PGW_DEFAULT_ALLOWED_FAILS;
    conf->cooldown_time = PGW_DEFAULT_COOLDOWN_TIME;
    conf->ledger_enabled = 1;
    conf->ledger_retention_days = PGW_DEFAULT_LEDGER_RETENTION_DAYS;
    conf->ledger_max_bytes = PGW_DEFAULT_LEDGER_MAX_BYTES;
    conf->points_per_usd = PGW_DEFAULT_POINTS_PER_USD;
    conf->reconcile_interval = PGW_DEFAULT_RECONCILE_INTERVAL;

    if (read_config_file(path, &buf, &len, err, errsz) != 0)
        goto Exit;
    if (!yaml_parser_initialize(&parser)) {
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    }
    parser_ready = 1;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &l.doc)) {
        syntax_error(&l, &parser, buf, len);
        goto Exit;
    }
    doc_ready = 1;

    yaml_node_t *root = yaml_document_get_root_node(&l.doc);
    if (root != NULL) {
        /* a second document ("---") would be silently ignored by most loaders; refuse it instead */
        if (!yaml_parser_load(&parser, &extra)) {
            syntax_error(&l, &parser, buf, len);
            goto Exit;
        }
        yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
        if (extra_root != NULL)
            pgw_loader_error(&l, extra_root, "only one YAML document is allowed");
        yaml_document_delete(&extra);
        if (extra_root != NULL)
            goto Exit;
        if (on_root(&l, root) != 0)
            goto Exit;
    }
    if (finish(&l) != 0)
        goto Exit;
    ret = 0;

Exit:
    if (doc_ready)
        yaml_document_delete(&l.doc);
    if (parser_ready)
        yaml_parser_delete(&parser);
    free(buf);
    for (size_t i = 0; i != l.num_scratch; ++i)
        free(l.scratch[i]);
    free(l.scratch);
    for (size_t i = 0; i != l.num_warned; ++i)
        free(l.warned[i]);
    free(l.warned);
    if (ret != 0)
        pgw_config_dispose(conf);
    return ret;
}

void pgw_config_warn_missing_env(const pgw_config_t *conf)
{
    static const struct {
        unsigned use;
        const char *effect;
    } effects[] = {{PGW_ENV_USE_ROUTE, "routes that need it answer 503"},
                   {PGW_ENV_USE_KEY, "gateway.keys entries that use it match no request (401)"}};
    for (size_t i = 0; i != conf->num_missing_env; ++i) {
        char what[256] = "";
        /* the master key's variable alone: the master key step says what its absence does (a generated key, or no start) */
        if (conf->missing_env_uses[i] == PGW_ENV_USE_MASTER)
            continue;
        for (size_t j = 0; j != sizeof(effects) / sizeof(effects[0]); ++j)
            if ((conf->missing_env_uses[i] & effects[j].use) != 0)
                snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s", what[0] != '\0' ? "; " : "", effects[j].effect);
        pgw_log_warn(MODULE_NAME, "environment variable %s is referenced by %s but not set; %s", conf->missing_env[i], conf->path,
                     what);
    }
}

void pgw_config_dispose(pgw_config_t *conf)
{
    for (size_t i = 0; i != conf->num_keys; ++i) {
        pgw_key_t *key = conf->keys + i;
        free(key->name);
        for (size_t j = 0; j != key->num_models; ++j)
            free(key->models[j]);
        free(key->models);
    }
    free(conf->keys);
    for (size_t i = 0; i != conf->num_budgets; ++i)
        free(conf->budgets[i].name);
    free(conf->budgets);
    free(conf->ledger_path);
    free(conf->tailscale_socket);
    free(conf->redis_host);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        pgw_route_t *route = conf->routes + i;
        free(route->model_name);
        free(route->upstream_model);
        free(route->api_base);
        free(route->extra_body);
        free(route->extra_body_members);
        free_secret(route->api_key);
        free(route->api_key_env);
        for (size_t j = 0; j != route->num_extra_headers; ++j) {
            free(route->extra_headers[j].name);
            free_secret(route->extra_headers[j].value); /* often an auth token */
        }
        free(route->extra_headers);
    }
    free(conf->routes);
    pgw_config_dispose_fallbacks(conf);
    free(conf->path);
    free_secret(conf->master_key);
    free(conf->master_key_env);
    free(conf->host);
    free(conf->log_level);
    free(conf->state_dir);
    free(conf->public_url);
    free(conf->tls_cert_file);
    free(conf->tls_key_file);
    free(conf->ssl_ca_file);
    for (size_t i = 0; i != conf->num_missing_env; ++i)
        free(conf->missing_env[i]);
    free(conf->missing_env);
    free(conf->missing_env_uses);
    for (size_t i = 0; i != conf->num_unknown_keys; ++i)
        free(conf->unknown_keys[i]);
    free(conf->unknown_keys);
    memset(conf, 0, sizeof(*conf));
}
