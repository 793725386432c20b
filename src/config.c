/* poe-gateway: MIT licence. Loads the LiteLLM-compatible YAML configuration (libyaml) into a plain pgw_config_t. */

/*
 * The file is read whole and parsed with libyaml's document API, which gives a node tree with marks; the walk below
 * then turns that tree into pgw_config_t, so nothing outside the loader ever sees YAML. The walk follows the file's
 * shape: one function per section. This file holds the file, the document, the top level and general_settings, and
 * what every section uses (config_loader.h): errors with positions, merged mappings, value conversions, os.environ/.
 * The sections of their own are src/config_routes.c (model_list, router_settings) and src/config_gateway.c
 * (gateway:).
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
#include "config_loader.h"
#include "log.h"

#define MODULE_NAME "config"
#define ENV_PREFIX "os.environ/"
#define MAX_CONFIG_BYTES (16 * 1024 * 1024)
#define MAX_MERGE_DEPTH 32
#define MAX_MERGE_EXPANSIONS 10000

struct st_pair_vec_t {
    pgw_loader_pair_t *entries;
    size_t num, cap;
};

/* the pair vectors of merged mappings grow by doubling (the other allocation helpers are in config_loader.h) */

static void *xgrow(void *p, size_t *cap, size_t need, size_t elemsz)
{
    if (need <= *cap)
        return p;
    size_t newcap = *cap < 8 ? 8 : *cap * 2;
    while (newcap < need)
        newcap *= 2;
    if (newcap > SIZE_MAX / elemsz)
        abort();
    *cap = newcap;
    return xrealloc(p, newcap * elemsz);
}

/* errors and warnings */

/* Writes "file:line:column: message" into the caller's buffer; returns -1 so that callers can `return pgw_loader_error(...)`. */
static int verror_at(pgw_loader_t *l, yaml_mark_t mark, const char *fmt, va_list args)
{
    if (l->errsz == 0)
        return -1;
    int off = snprintf(l->err, l->errsz, "%s:%zu:%zu: ", l->path, mark.line + 1, mark.column + 1);
    if (off >= 0 && (size_t)off < l->errsz)
        vsnprintf(l->err + off, l->errsz - off, fmt, args);
    /* one line, whatever the file's strings hold: a model name with a newline must not forge a second log line */
    for (char *p = l->err; *p != '\0'; ++p)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return -1;
}

int pgw_loader_error(pgw_loader_t *l, const yaml_node_t *node, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    verror_at(l, node->start_mark, fmt, args);
    va_end(args);
    return -1;
}

__attribute__((format(printf, 3, 4))) static int error_at_mark(pgw_loader_t *l, yaml_mark_t mark, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    verror_at(l, mark, fmt, args);
    va_end(args);
    return -1;
}

/* Logs "file:line:col: <section>: ignoring <what> 'key'" unless that key was already reported for that section. */
static void warn_ignored(pgw_loader_t *l, const yaml_node_t *key, const char *section, const char *what)
{
    const char *name = (const char *)key->data.scalar.value;
    size_t idlen = strlen(section) + 1 + strlen(name) + 1;
    char *id = xrealloc(NULL, idlen);
    snprintf(id, idlen, "%s.%s", section, name);
    for (size_t i = 0; i != l->num_warned; ++i) {
        if (strcmp(l->warned[i], id) == 0) {
            free(id);
            return;
        }
    }
    l->warned = xrealloc(l->warned, (l->num_warned + 1) * sizeof(l->warned[0]));
    l->warned[l->num_warned++] = id;
    pgw_log_warn(MODULE_NAME, "%s:%zu:%zu: %s: ignoring %s '%s'", l->path, key->start_mark.line + 1, key->start_mark.column + 1,
                 section, what, name);
}

void pgw_loader_warn_unknown(pgw_loader_t *l, const yaml_node_t *key, const char *section)
{
    warn_ignored(l, key, section, "unknown key");
}

/* node helpers */

yaml_node_t *pgw_loader_node(pgw_loader_t *l, int id)
{
    yaml_node_t *node = yaml_document_get_node(&l->doc, id);
    assert(node != NULL);
    return node;
}

int pgw_yaml_is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)node->data.scalar.value;
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

int pgw_yaml_key_is(const yaml_node_t *key, const char *name)
{
    return strcmp((const char *)key->data.scalar.value, name) == 0;
}

const char *pgw_loader_scalar(pgw_loader_t *l, yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        pgw_loader_error(l, node, "%s must be a scalar, not a %s", what, node->type == YAML_MAPPING_NODE ? "mapping" : "sequence");
        return NULL;
    }
    if (memchr(node->data.scalar.value, '\0', node->data.scalar.length) != NULL) {
        pgw_loader_error(l, node, "%s contains a NUL character", what);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

int pgw_loader_expect_mapping(pgw_loader_t *l, yaml_node_t *node, const char *what)
{
    if (node->type == YAML_MAPPING_NODE)
        return 0;
    return pgw_loader_error(l, node, "%s must be a mapping, not a %s", what,
                            node->type == YAML_SCALAR_NODE ? "scalar" : "sequence");
}

static size_t find_pair(const struct st_pair_vec_t *vec, const yaml_node_t *key)
{
    for (size_t i = 0; i != vec->num; ++i) {
        const yaml_node_t *k = vec->entries[i].key;
        if (k->data.scalar.length == key->data.scalar.length &&
            memcmp(k->data.scalar.value, key->data.scalar.value, key->data.scalar.length) == 0)
            return i;
    }
    return SIZE_MAX;
}

static int is_merge_key(const yaml_node_t *key)
{
    return key->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && strcmp((const char *)key->data.scalar.value, "<<") == 0;
}

/*
 * Appends the effective pairs of `map` to `vec`: its own keys first, then those of the mappings it merges with `<<`,
 * each skipped when a key already in `vec` (from a mapping with higher precedence) has the same name.
 */
static int collect_pairs(pgw_loader_t *l, yaml_node_t *map, struct st_pair_vec_t *vec, unsigned depth)
{
    size_t first = vec->num;
    yaml_node_pair_t *p;

    if (depth > MAX_MERGE_DEPTH || ++l->merge_expansions > MAX_MERGE_EXPANSIONS)
        return pgw_loader_error(l, map, "merge keys nested too deeply");

    for (p = map->data.mapping.pairs.start; p != map->data.mapping.pairs.top; ++p) {
        yaml_node_t *key = pgw_loader_node(l, p->key), *value = pgw_loader_node(l, p->value);
        if (key->type != YAML_SCALAR_NODE)
            return pgw_loader_error(l, key, "a mapping key must be a scalar");
        if (memchr(key->data.scalar.value, '\0', key->data.scalar.length) != NULL)
            return pgw_loader_error(l, key, "a mapping key contains a NUL character");
        if (is_merge_key(key))
            continue;
        size_t found = find_pair(vec, key);
        if (found != SIZE_MAX) {
            if (found >= first)
                return pgw_loader_error(l, key, "duplicate key '%s' (first at line %zu)", (const char *)key->data.scalar.value,
                                        vec->entries[found].key->start_mark.line + 1);
            continue; /* overridden by a mapping that merges this one */
        }
        vec->entries = xgrow(vec->entries, &vec->cap, vec->num + 1, sizeof(vec->entries[0]));
        vec->entries[vec->num++] = (pgw_loader_pair_t){key, value};
    }

    for (p = map->data.mapping.pairs.start; p != map->data.mapping.pairs.top; ++p) {
        yaml_node_t *key = pgw_loader_node(l, p->key), *value = pgw_loader_node(l, p->value);
        if (!is_merge_key(key))
            continue;
        if (value->type == YAML_MAPPING_NODE) {
            if (collect_pairs(l, value, vec, depth + 1) != 0)
                return -1;
        } else if (value->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *item = value->data.sequence.items.start; item != value->data.sequence.items.top; ++item) {
                yaml_node_t *src = pgw_loader_node(l, *item);
                if (src->type != YAML_MAPPING_NODE)
                    return pgw_loader_error(l, src, "a merge key (<<) takes a mapping or a sequence of mappings");
                if (collect_pairs(l, src, vec, depth + 1) != 0)
                    return -1;
            }
        } else {
            return pgw_loader_error(l, value, "a merge key (<<) takes a mapping or a sequence of mappings");
        }
    }
    return 0;
}

int pgw_loader_pairs(pgw_loader_t *l, yaml_node_t *map, pgw_loader_pair_t **pairs, size_t *num)
{
    struct st_pair_vec_t vec = {NULL};

    if (collect_pairs(l, map, &vec, 0) != 0) {
        free(vec.entries);
        return -1;
    }
    l->scratch = xrealloc(l->scratch, (l->num_scratch + 1) * sizeof(l->scratch[0]));
    l->scratch[l->num_scratch++] = vec.entries;
    *pairs = vec.entries;
    *num = vec.num;
    return 0;
}

/* scalar conversions: their contracts are in config_loader.h */

int pgw_loader_int(pgw_loader_t *l, yaml_node_t *node, const char *what, long long min, long long max, long long *out)
{
    const char *s = pgw_loader_scalar(l, node, what), *p;
    if (s == NULL)
        return -1;
    p = *s == '+' || *s == '-' ? s + 1 : s;
    if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
        goto Error;
    errno = 0;
    *out = strtoll(s, NULL, 10);
    if (errno != 0 || *out < min || *out > max)
        goto Error;
    return 0;
Error:
    return pgw_loader_error(l, node, "%s must be an integer between %lld and %lld", what, min, max);
}

int pgw_loader_seconds(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out)
{
    const char *s = pgw_loader_scalar(l, node, what);
    char *end;
    if (s == NULL)
        return -1;
    if (*s == '\0' || strspn(s, "0123456789.eE+-") != strlen(s))
        goto Error;
    *out = strtod(s, &end);
    if (*end != '\0' || !isfinite(*out) || *out < 0 || (*out == 0 && !allow_zero))
        goto Error;
    return 0;
Error:
    return pgw_loader_error(l, node, "%s must be a %s number of seconds", what, allow_zero ? "non-negative" : "positive");
}

int pgw_loader_size(pgw_loader_t *l, yaml_node_t *node, const char *what, size_t *out)
{
    const char *s = pgw_loader_scalar(l, node, what);
    size_t digits;
    unsigned long long value, unit = 1;
    if (s == NULL)
        return -1;
    if ((digits = strspn(s, "0123456789")) == 0)
        goto Error;
    switch (s[digits]) {
    case '\0':
        break;
    case 'k':
    case 'K':
        unit = 1024;
        break;
    case 'm':
    case 'M':
        unit = 1024 * 1024;
        break;
    case 'g':
    case 'G':
        unit = 1024 * 1024 * 1024;
        break;
    default:
        goto Error;
    }
    if (unit != 1 && s[digits + 1] != '\0')
        goto Error;
    errno = 0;
    value = strtoull(s, NULL, 10);
    if (errno != 0 || value == 0 || value > SIZE_MAX / unit)
        goto Error;
    *out = (size_t)(value * unit);
    return 0;
Error:
    return pgw_loader_error(l, node, "%s must be a positive number of bytes, optionally with a K, M or G suffix", what);
}

int pgw_loader_bool(pgw_loader_t *l, yaml_node_t *node, const char *what, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    const char *s = pgw_loader_scalar(l, node, what);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i != sizeof(yes) / sizeof(yes[0]); ++i) {
        if (strcmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return pgw_loader_error(l, node, "%s must be true or false", what);
}

int pgw_loader_string(pgw_loader_t *l, yaml_node_t *node, const char *what, char **field)
{
    const char *s = pgw_loader_scalar(l, node, what);
    if (s == NULL)
        return -1;
    if (*s == '\0')
        return pgw_loader_error(l, node, "%s must not be empty", what);
    free(*field);
    *field = xstrdup(s);
    return 0;
}

int pgw_loader_is_http_url(const char *s)
{
    size_t skip;
    if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else
        return 0;
    return s[skip] != '\0' && s[skip] != '/';
}

void pgw_loader_strip_slashes(char *s)
{
    size_t len = strlen(s);
    while (len != 0 && s[len - 1] == '/')
        s[--len] = '\0';
}

static void add_missing_env(pgw_loader_t *l, const char *name)
{
    pgw_config_t *conf = l->conf;
    for (size_t i = 0; i != conf->num_missing_env; ++i)
        if (strcmp(conf->missing_env[i], name) == 0)
            return;
    conf->missing_env = xrealloc(conf->missing_env, (conf->num_missing_env + 1) * sizeof(conf->missing_env[0]));
    conf->missing_env[conf->num_missing_env++] = xstrdup(name);
}

static int is_env_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (++s; *s != '\0'; ++s)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

int pgw_loader_env_value(pgw_loader_t *l, yaml_node_t *node, const char *what, char **value, char **env_name)
{
    const char *s = pgw_loader_scalar(l, node, what), *name, *env;
    *value = NULL;
    if (env_name != NULL)
        *env_name = NULL;
    if (s == NULL)
        return -1;
    if (strncmp(s, ENV_PREFIX, sizeof(ENV_PREFIX) - 1) != 0) {
        if (*s != '\0')
            *value = xstrdup(s);
        return 0;
    }
    name = s + sizeof(ENV_PREFIX) - 1;
    if (!is_env_name(name))
        return pgw_loader_error(l, node, "%s: '%s' is not a valid environment variable name", what, name);
    if ((env = getenv(name)) != NULL && *env != '\0')
        *value = xstrdup(env);
    else
        add_missing_env(l, name);
    if (env_name != NULL)
        *env_name = xstrdup(name);
    return 0;
}

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
        } else if (pgw_yaml_key_is(key, "gateway")) {
            ret = pgw_loader_on_gateway(l, value);
        } else {
            warn_ignored(l, key, "top level", "unsupported section");
        }
        if (ret != 0)
            return -1;
    }
    return 0;
}

/* Applies what can only be decided once the whole file is read. */
static void finish(pgw_loader_t *l)
{
    pgw_config_t *conf = l->conf;

    pgw_loader_finish_routes(l);

    /* two largest bodies on one connection; eight in the whole gateway, 256 MB with the default max_body_bytes, held for
     * as long as their requests last: far above what a team's Claude Code sessions send (a few MB each), far below what
     * bodies of clients that never finish them could otherwise pile up */
    if (conf->max_body_bytes_per_connection == 0)
        conf->max_body_bytes_per_connection = conf->max_body_bytes > SIZE_MAX / 2 ? SIZE_MAX : 2 * conf->max_body_bytes;
    if (conf->max_body_bytes_in_flight == 0)
        conf->max_body_bytes_in_flight = conf->max_body_bytes > SIZE_MAX / 8 ? SIZE_MAX : 8 * conf->max_body_bytes;

    if (!l->have_master_key) {
        const char *env = getenv("LITELLM_MASTER_KEY");
        free_secret(conf->master_key);
        free(conf->master_key_env);
        conf->master_key = NULL;
        conf->master_key_env = NULL;
        if (env != NULL && *env != '\0') {
            conf->master_key = xstrdup(env);
            conf->master_key_env = xstrdup("LITELLM_MASTER_KEY");
        }
    }
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
        return error_at_mark(l, mark, "%s (%s at line %zu)", parser->problem, parser->context, parser->context_mark.line + 1);
    return error_at_mark(l, mark, "%s", parser->problem != NULL ? parser->problem : "invalid YAML");
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
    conf->max_body_bytes = PGW_DEFAULT_MAX_BODY_BYTES;
    conf->idle_timeout = PGW_DEFAULT_IDLE_TIMEOUT;
    conf->graceful_timeout = PGW_DEFAULT_GRACEFUL_TIMEOUT;
    conf->upstream_rpm = 500;
    conf->queue_timeout = 60;

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
    finish(&l);
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
    free(conf->tailscale_socket);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        pgw_route_t *route = conf->routes + i;
        free(route->model_name);
        free(route->upstream_model);
        free(route->api_base);
        free(route->extra_body);
        free_secret(route->api_key);
        free(route->api_key_env);
        for (size_t j = 0; j != route->num_extra_headers; ++j) {
            free(route->extra_headers[j].name);
            free_secret(route->extra_headers[j].value); /* often an auth token */
        }
        free(route->extra_headers);
    }
    free(conf->routes);
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
    memset(conf, 0, sizeof(*conf));
}
