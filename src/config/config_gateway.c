/* poe-gateway: MIT licence. The gateway: section, this project's own part of the configuration file.
 *
 * One table, gateway_keys[], drives the section (in the manner of redis's static configs): each key appears once, with
 * its type, the field of pgw_config_t it fills, and its bounds. pgw_loader_on_gateway looks each key of the mapping up
 * in the table (an unknown key is warned about once, with the nearest known one, and ignored; --check-config refuses
 * it: pgw_loader_unknown_own_key; a null value counts as absent) and on_gateway_key
 * converts the value by its type; the types that are more than a scalar (tls, keys, auth, metrics_auth) have their
 * own function below.
 *
 * Adding a key: a field in pgw_config_t (src/config/config.h), its default in pgw_config_load and, for a string, its free in
 * pgw_config_dispose (src/config/config.c), one line in the table, and the README's row. docs/config.md#the-gateway-section
 * lists the keys.
 */
#include <assert.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <openssl/sha.h>
#include "config/config_loader.h"
#include "common/log.h"

enum en_key_type_t {
    KEY_STRING,    /* char *, non-empty */
    KEY_URL,       /* char *, http:// or https://, trailing '/' removed */
    KEY_LOG_LEVEL, /* char *, one pgw_log_parse_level accepts */
    KEY_UINT,      /* unsigned, between min and max */
    KEY_SIZE,      /* size_t, with an optional K/M/G suffix */
    KEY_SECONDS,   /* double, > 0 (>= 0 with allow_zero) */
    KEY_TLS,       /* the tls: mapping */
    KEY_KEYS,      /* the keys: sequence of named client keys */
    KEY_AUTH,      /* keys | tailscale */
    KEY_METRICS,   /* pgw_metrics_auth_t: master | keys | none */
    KEY_REDIS,     /* redis://host[:port][/db] */
    KEY_REDIS_FAILURE, /* open | closed */
    KEY_UPSTREAM_CLIENT, /* builtin | curl */
    KEY_LEDGER,    /* the ledger: mapping (src/config/config_ledger.c) */
    KEY_BUDGET,    /* pgw_budget_t: {daily, monthly, unit} */
    KEY_BUDGETS,   /* the budgets: mapping of caller names */
    KEY_NUMBER,    /* double, > 0 */
};

static const struct st_gateway_key_t {
    const char *name;
    enum en_key_type_t type;
    size_t offset;
    long long min, max; /* KEY_UINT bounds */
    int allow_zero;     /* KEY_SECONDS: 0 is meaningful */
} gateway_keys[] = {
    {"host", KEY_STRING, offsetof(pgw_config_t, host)},
    {"port", KEY_UINT, offsetof(pgw_config_t, port), 0, 65535},
    {"threads", KEY_UINT, offsetof(pgw_config_t, threads), 0, 1024},
    {"log_level", KEY_LOG_LEVEL, offsetof(pgw_config_t, log_level)},
    {"state_dir", KEY_STRING, offsetof(pgw_config_t, state_dir)},
    {"public_url", KEY_URL, offsetof(pgw_config_t, public_url)},
    {"tls", KEY_TLS},
    {"ssl_ca_file", KEY_STRING, offsetof(pgw_config_t, ssl_ca_file)},
    {"max_body_bytes", KEY_SIZE, offsetof(pgw_config_t, max_body_bytes)},
    {"max_body_bytes_per_connection", KEY_SIZE, offsetof(pgw_config_t, max_body_bytes_per_connection)},
    {"max_body_bytes_in_flight", KEY_SIZE, offsetof(pgw_config_t, max_body_bytes_in_flight)},
    {"idle_timeout", KEY_SECONDS, offsetof(pgw_config_t, idle_timeout)},
    {"max_connections", KEY_UINT, offsetof(pgw_config_t, max_connections), 1, 10000000},
    {"graceful_timeout", KEY_SECONDS, offsetof(pgw_config_t, graceful_timeout), 0, 0, 1},
    {"keys", KEY_KEYS},
    {"metrics_auth", KEY_METRICS, offsetof(pgw_config_t, metrics_auth)},
    {"auth", KEY_AUTH},
    {"tailscale_socket", KEY_STRING, offsetof(pgw_config_t, tailscale_socket)},
    {"upstream_rpm", KEY_UINT, offsetof(pgw_config_t, upstream_rpm), 0, 1000000},
    {"upstream_burst", KEY_UINT, offsetof(pgw_config_t, upstream_burst), 0, 1000000},
    {"queue_timeout", KEY_SECONDS, offsetof(pgw_config_t, queue_timeout), 0, 0, 1},
    {"upstream_connections", KEY_UINT, offsetof(pgw_config_t, upstream_connections), 1, 65536},
    {"redis", KEY_REDIS},
    {"redis_timeout", KEY_SECONDS, offsetof(pgw_config_t, redis_timeout)},
    {"redis_failure", KEY_REDIS_FAILURE},
    {"upstream_client", KEY_UPSTREAM_CLIENT},
    {"ledger", KEY_LEDGER},
    {"points_per_usd", KEY_NUMBER, offsetof(pgw_config_t, points_per_usd)},
    {"budget", KEY_BUDGET, offsetof(pgw_config_t, team_budget)},
    {"budgets", KEY_BUDGETS},
};

static int on_tls(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_config_t *conf = l->conf;
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_loader_expect_mapping(l, node, "gateway.tls") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        if (pgw_yaml_key_is(key, "cert_file")) {
            if (!pgw_yaml_is_null(value) && pgw_loader_string(l, value, "gateway.tls.cert_file", &conf->tls_cert_file) != 0)
                return -1;
        } else if (pgw_yaml_key_is(key, "key_file")) {
            if (!pgw_yaml_is_null(value) && pgw_loader_string(l, value, "gateway.tls.key_file", &conf->tls_key_file) != 0)
                return -1;
        } else {
            static const char *const known[] = {"cert_file", "key_file"};
            pgw_loader_unknown_own_key(l, key, "gateway.tls", known, sizeof(known) / sizeof(known[0]));
        }
    }
    if (conf->tls_cert_file != NULL && conf->tls_key_file == NULL)
        return pgw_loader_error(l, node, "gateway.tls has cert_file but no key_file");
    if (conf->tls_cert_file == NULL && conf->tls_key_file != NULL)
        return pgw_loader_error(l, node, "gateway.tls has key_file but no cert_file");
    return 0;
}

/* gateway.keys */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int on_key_entry(pgw_loader_t *l, yaml_node_t *entry)
{
    pgw_config_t *conf = l->conf;
    pgw_loader_pair_t *pairs;
    size_t num;
    yaml_node_t *name_node = NULL, *key_node = NULL;

    if (pgw_loader_expect_mapping(l, entry, "gateway.keys entry") != 0 || pgw_loader_pairs(l, entry, &pairs, &num) != 0)
        return -1;
    conf->keys = xrealloc(conf->keys, (conf->num_keys + 1) * sizeof(conf->keys[0]));
    pgw_key_t *key = conf->keys + conf->num_keys++;
    memset(key, 0, sizeof(*key));
    key->line = (unsigned)entry->start_mark.line + 1;
    key->column = (unsigned)entry->start_mark.column + 1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *k = pairs[i].key, *v = pairs[i].value;
        long long n;
        if (pgw_yaml_key_is(k, "name")) {
            name_node = v;
        } else if (pgw_yaml_key_is(k, "key")) {
            key_node = v;
        } else if (pgw_yaml_key_is(k, "rpm")) {
            if (pgw_loader_int(l, v, "gateway.keys.rpm", 0, INT_MAX, &n) != 0)
                return -1;
            key->rpm = (int)n;
        } else if (pgw_yaml_key_is(k, "budget")) {
            if (!pgw_yaml_is_null(v) && pgw_loader_on_budget(l, v, "gateway.keys.budget", &key->budget) != 0)
                return -1;
        } else if (pgw_yaml_key_is(k, "models")) {
            if (v->type != YAML_SEQUENCE_NODE)
                return pgw_loader_error(l, v, "gateway.keys.models must be a sequence of model names or patterns");
            for (yaml_node_item_t *item = v->data.sequence.items.start; item != v->data.sequence.items.top; ++item) {
                const char *pattern = pgw_loader_scalar(l, pgw_loader_node(l, *item), "gateway.keys.models entry");
                if (pattern == NULL)
                    return -1;
                key->models = xrealloc(key->models, (key->num_models + 1) * sizeof(key->models[0]));
                key->models[key->num_models++] = xstrdup(pattern);
            }
        } else {
            static const char *const known[] = {"name", "key", "models", "rpm"};
            pgw_loader_unknown_own_key(l, k, "gateway.keys entry", known, sizeof(known) / sizeof(known[0]));
        }
    }
    const char *name;
    if (name_node == NULL || pgw_yaml_is_null(name_node))
        return pgw_loader_error(l, entry, "gateway.keys entry has no name");
    if ((name = pgw_loader_scalar(l, name_node, "gateway.keys.name")) == NULL)
        return -1;
    if (*name == '\0' || strcmp(name, "master") == 0)
        return pgw_loader_error(l, name_node, "gateway.keys.name must be a non-empty name other than 'master'");
    for (size_t i = 0; i + 1 < conf->num_keys; ++i)
        if (strcmp(conf->keys[i].name, name) == 0)
            return pgw_loader_error(l, name_node, "duplicate key name '%s' (first at line %u)", name, conf->keys[i].line);
    key->name = xstrdup(name);
    if (key_node == NULL || pgw_yaml_is_null(key_node))
        return pgw_loader_error(l, entry, "key '%s' has no key: give a literal, os.environ/NAME or sha256:<64 hex digits>", name);

    const char *text = pgw_loader_scalar(l, key_node, "gateway.keys.key");
    if (text == NULL)
        return -1;
    if (strncmp(text, "sha256:", 7) == 0) {
        const char *hex = text + 7;
        if (strlen(hex) != 64)
            return pgw_loader_error(l, key_node, "key '%s': sha256: takes 64 hex digits", name);
        for (size_t i = 0; i != 32; ++i) {
            int hi = hex_digit(hex[i * 2]), lo = hex_digit(hex[i * 2 + 1]);
            if (hi < 0 || lo < 0)
                return pgw_loader_error(l, key_node, "key '%s': sha256: takes 64 hex digits", name);
            key->sha256[i] = (unsigned char)(hi << 4 | lo);
        }
        key->has_key = 1;
        return 0;
    }
    char *secret, *env_name;
    if (pgw_loader_env_value(l, key_node, "gateway.keys.key", &secret, &env_name) != 0)
        return -1;
    free(env_name);
    if (secret != NULL) {
        SHA256((const unsigned char *)secret, strlen(secret), key->sha256);
        key->has_key = 1;
        free_secret(secret);
    }
    return 0;
}

static int on_keys(pgw_loader_t *l, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE)
        return pgw_loader_error(l, node, "gateway.keys must be a sequence of {name, key, models, rpm, budget} entries");
    for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item)
        if (on_key_entry(l, pgw_loader_node(l, *item)) != 0)
            return -1;
    return 0;
}

static int on_metrics_auth(pgw_loader_t *l, yaml_node_t *value, const char *what, pgw_metrics_auth_t *field)
{
    static const struct {
        const char *name;
        pgw_metrics_auth_t mode;
    } modes[] = {{"master", PGW_METRICS_AUTH_MASTER}, {"keys", PGW_METRICS_AUTH_KEYS}, {"none", PGW_METRICS_AUTH_NONE}};
    const char *s = pgw_loader_scalar(l, value, what);

    if (s == NULL)
        return -1;
    if (*s == '\0')
        return pgw_loader_error(l, value, "%s must not be empty", what);
    for (size_t i = 0; i != sizeof(modes) / sizeof(modes[0]); ++i) {
        if (strcmp(s, modes[i].name) == 0) {
            *field = modes[i].mode;
            return 0;
        }
    }
    return pgw_loader_error(l, value, "%s must be one of master, keys, none", what);
}

/* gateway.redis: redis://host[:port][/db]. The password comes from the environment (REDIS_PASSWORD), never the file;
 * rediss:// is refused, since the hiredis this builds on has no TLS (README, Running several replicas). */
static int on_redis(pgw_loader_t *l, yaml_node_t *value)
{
    pgw_config_t *conf = l->conf;
    const char *url = pgw_loader_scalar(l, value, "gateway.redis"), *p, *host, *end;
    if (url == NULL)
        return -1;
    if (strncmp(url, "rediss://", 9) == 0)
        return pgw_loader_error(l, value, "gateway.redis: rediss:// (TLS) is not supported; reach Redis over a private network "
                                          "or a TLS tunnel and give redis://host:port/db");
    if (strncmp(url, "redis://", 8) != 0)
        return pgw_loader_error(l, value, "gateway.redis must be redis://host[:port][/db]");
    host = url + 8;
    if (strchr(host, '@') != NULL)
        return pgw_loader_error(l, value, "gateway.redis must not hold credentials: set REDIS_PASSWORD (and REDIS_USERNAME) in "
                                          "the environment");
    if (*host == '[') { /* [v6]:port */
        if ((end = strchr(host, ']')) == NULL)
            return pgw_loader_error(l, value, "gateway.redis: unclosed [ in the host");
        p = end + 1;
        ++host;
    } else {
        for (end = host; *end != '\0' && *end != ':' && *end != '/'; ++end)
            ;
        p = end;
    }
    if (end == host)
        return pgw_loader_error(l, value, "gateway.redis has no host");
    conf->redis_port = 6379;
    conf->redis_db = 0;
    if (*p == ':') {
        char *num_end;
        long port = strtol(p + 1, &num_end, 10);
        if (num_end == p + 1 || port < 1 || port > 65535)
            return pgw_loader_error(l, value, "gateway.redis: the port must be 1 to 65535");
        conf->redis_port = (unsigned)port;
        p = num_end;
    }
    if (*p == '/' && p[1] != '\0') {
        char *num_end;
        long db = strtol(p + 1, &num_end, 10);
        if (num_end == p + 1 || *num_end != '\0' || db < 0 || db > 100000)
            return pgw_loader_error(l, value, "gateway.redis: the database after / must be a number");
        conf->redis_db = (unsigned)db;
        p = num_end;
    } else if (*p == '/') {
        ++p;
    }
    if (*p != '\0')
        return pgw_loader_error(l, value, "gateway.redis must be redis://host[:port][/db]");
    free(conf->redis_host);
    conf->redis_host = xstrndup(host, (size_t)(end - host));
    return 0;
}

static int on_gateway_key(pgw_loader_t *l, const struct st_gateway_key_t *k, yaml_node_t *value)
{
    char what[64];
    void *field = (char *)l->conf + k->offset;
    long long n;
    pgw_log_level_t level;

    snprintf(what, sizeof(what), "gateway.%s", k->name);
    switch (k->type) {
    case KEY_STRING:
        return pgw_loader_string(l, value, what, field);
    case KEY_URL:
        if (pgw_loader_string(l, value, what, field) != 0)
            return -1;
        if (!pgw_loader_is_http_url(*(char **)field))
            return pgw_loader_error(l, value, "%s must start with http:// or https://", what);
        pgw_loader_strip_slashes(*(char **)field);
        return 0;
    case KEY_LOG_LEVEL:
        if (pgw_loader_string(l, value, what, field) != 0)
            return -1;
        if (pgw_log_parse_level(*(char **)field, &level) != 0)
            return pgw_loader_error(l, value, "%s must be one of error, warn, info, debug", what);
        return 0;
    case KEY_UINT:
        if (pgw_loader_int(l, value, what, k->min, k->max, &n) != 0)
            return -1;
        *(unsigned *)field = (unsigned)n;
        return 0;
    case KEY_SIZE:
        return pgw_loader_size(l, value, what, field);
    case KEY_SECONDS:
        return pgw_loader_seconds(l, value, what, k->allow_zero, field);
    case KEY_TLS:
        return on_tls(l, value);
    case KEY_KEYS:
        return on_keys(l, value);
    case KEY_AUTH: {
        const char *mode = pgw_loader_scalar(l, value, what);
        if (mode == NULL)
            return -1;
        if (strcmp(mode, "tailscale") == 0)
            l->conf->auth_tailscale = 1;
        else if (strcmp(mode, "keys") == 0)
            l->conf->auth_tailscale = 0;
        else
            return pgw_loader_error(l, value, "%s must be keys or tailscale", what);
        return 0;
    }
    case KEY_METRICS:
        return on_metrics_auth(l, value, what, field);
    case KEY_REDIS:
        return on_redis(l, value);
    case KEY_REDIS_FAILURE: {
        const char *mode = pgw_loader_scalar(l, value, what);
        if (mode == NULL)
            return -1;
        if (strcmp(mode, "open") != 0 && strcmp(mode, "closed") != 0)
            return pgw_loader_error(l, value, "%s must be open or closed", what);
        l->conf->redis_fail_closed = strcmp(mode, "closed") == 0;
        return 0;
    }
    case KEY_UPSTREAM_CLIENT: {
        const char *client = pgw_loader_scalar(l, value, what);
        if (client == NULL)
            return -1;
        if (strcmp(client, "builtin") != 0 && strcmp(client, "curl") != 0)
            return pgw_loader_error(l, value, "%s must be builtin or curl", what);
        l->conf->upstream_client_curl = strcmp(client, "curl") == 0;
        return 0;
    }
    case KEY_LEDGER:
        return pgw_loader_on_ledger(l, value);
    case KEY_BUDGET:
        return pgw_loader_on_budget(l, value, what, field);
    case KEY_BUDGETS:
        return pgw_loader_on_budgets(l, value);
    case KEY_NUMBER:
        return pgw_loader_number(l, value, what, 0, field);
    }
    assert(!"unknown key type");
    return -1;
}

int pgw_loader_on_gateway(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num, k;

    if (pgw_yaml_is_null(node))
        return 0;
    if (pgw_loader_expect_mapping(l, node, "gateway") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        for (k = 0; k != sizeof(gateway_keys) / sizeof(gateway_keys[0]); ++k)
            if (pgw_yaml_key_is(pairs[i].key, gateway_keys[k].name))
                break;
        if (k == sizeof(gateway_keys) / sizeof(gateway_keys[0])) {
            const char *known[sizeof(gateway_keys) / sizeof(gateway_keys[0])];
            for (k = 0; k != sizeof(gateway_keys) / sizeof(gateway_keys[0]); ++k)
                known[k] = gateway_keys[k].name;
            pgw_loader_unknown_own_key(l, pairs[i].key, "gateway", known, k);
        } else if (!pgw_yaml_is_null(pairs[i].value) && on_gateway_key(l, gateway_keys + k, pairs[i].value) != 0) {
            return -1;
        }
    }
    /* a limit on bodies in flight below max_body_bytes would answer 503 "overloaded" to bodies no load could let in */
    const pgw_config_t *conf = l->conf;
    for (size_t i = 0; i != num; ++i) {
        if (pgw_yaml_is_null(pairs[i].value))
            continue;
        if (pgw_yaml_key_is(pairs[i].key, "max_body_bytes_per_connection") &&
            conf->max_body_bytes_per_connection < conf->max_body_bytes)
            return pgw_loader_error(l, pairs[i].value,
                                    "gateway.max_body_bytes_per_connection must be at least max_body_bytes (%zu bytes)",
                                    conf->max_body_bytes);
        if (pgw_yaml_key_is(pairs[i].key, "max_body_bytes_in_flight") && conf->max_body_bytes_in_flight < conf->max_body_bytes)
            return pgw_loader_error(l, pairs[i].value,
                                    "gateway.max_body_bytes_in_flight must be at least max_body_bytes (%zu bytes)",
                                    conf->max_body_bytes);
    }
    return 0;
}
