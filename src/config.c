/* poe-gateway: MIT licence. Loads the LiteLLM-compatible YAML configuration (libyaml) into a plain pgw_config_t. */

/*
 * The file is read whole and parsed with libyaml's document API, which gives a node tree with marks; the walk below
 * then turns that tree into pgw_config_t, so nothing outside this file ever sees YAML. The walk follows the file's
 * shape: one function per section, one `if` chain (or, for `gateway:`, one table) of the keys each section knows.
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
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>
#include <openssl/sha.h>
#include "config.h"
#include "log.h"
#include "translate_extra.h"

#define MODULE_NAME "config"
#define ENV_PREFIX "os.environ/"
#define MAX_CONFIG_BYTES (16 * 1024 * 1024)
#define MAX_MERGE_DEPTH 32
#define MAX_MERGE_EXPANSIONS 10000
#define MAX_SUGGEST_INPUT 256 /* longer client model names get no suggestions (bounds the edit-distance work) */

typedef struct st_pair_t {
    yaml_node_t *key;
    yaml_node_t *value;
} pair_t;

struct st_pair_vec_t {
    pair_t *entries;
    size_t num, cap;
};

struct st_loader_t {
    pgw_config_t *conf;
    const char *path;
    yaml_document_t doc;
    char *err;
    size_t errsz;
    /* pair arrays handed out by get_pairs, freed when the load ends */
    void **scratch;
    size_t num_scratch;
    /* "section.key" strings already warned about, so each unknown key is reported once */
    char **warned;
    size_t num_warned;
    size_t merge_expansions;
    /* router_settings, applied to routes that do not set their own after the whole file is read */
    double router_timeout;  /* < 0: unset */
    int router_num_retries; /* < 0: unset */
    int have_master_key;    /* general_settings.master_key was given */
};

/* allocation: out of memory ends the process, so callers never check for NULL */

static void *xrealloc(void *p, size_t sz)
{
    if ((p = realloc(p, sz == 0 ? 1 : sz)) == NULL) {
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    }
    return p;
}

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

static char *xstrndup(const char *s, size_t len)
{
    char *p = xrealloc(NULL, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* frees a string that may hold a credential, wiping it first */
static void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* errors and warnings */

/* Writes "file:line:column: message" into the caller's buffer; returns -1 so that callers can `return error_at(...)`. */
static int verror_at(struct st_loader_t *l, yaml_mark_t mark, const char *fmt, va_list args)
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

__attribute__((format(printf, 3, 4))) static int error_at(struct st_loader_t *l, const yaml_node_t *node, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    verror_at(l, node->start_mark, fmt, args);
    va_end(args);
    return -1;
}

__attribute__((format(printf, 3, 4))) static int error_at_mark(struct st_loader_t *l, yaml_mark_t mark, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    verror_at(l, mark, fmt, args);
    va_end(args);
    return -1;
}

/* Logs "file:line:col: <section>: ignoring <what> 'key'" unless that key was already reported for that section. */
static void warn_ignored(struct st_loader_t *l, const yaml_node_t *key, const char *section, const char *what)
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

static void warn_unknown(struct st_loader_t *l, const yaml_node_t *key, const char *section)
{
    warn_ignored(l, key, section, "unknown key");
}

/* node helpers */

static yaml_node_t *node_at(struct st_loader_t *l, int id)
{
    yaml_node_t *node = yaml_document_get_node(&l->doc, id);
    assert(node != NULL);
    return node;
}

static int is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = (const char *)node->data.scalar.value;
    return strcmp(s, "") == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static int key_is(const yaml_node_t *key, const char *name)
{
    return strcmp((const char *)key->data.scalar.value, name) == 0;
}

/* Returns the text of a scalar node, or NULL after setting the error. The text is owned by the document. */
static const char *get_scalar(struct st_loader_t *l, yaml_node_t *node, const char *what)
{
    if (node->type != YAML_SCALAR_NODE) {
        error_at(l, node, "%s must be a scalar, not a %s", what, node->type == YAML_MAPPING_NODE ? "mapping" : "sequence");
        return NULL;
    }
    if (memchr(node->data.scalar.value, '\0', node->data.scalar.length) != NULL) {
        error_at(l, node, "%s contains a NUL character", what);
        return NULL;
    }
    return (const char *)node->data.scalar.value;
}

static int expect_mapping(struct st_loader_t *l, yaml_node_t *node, const char *what)
{
    if (node->type == YAML_MAPPING_NODE)
        return 0;
    return error_at(l, node, "%s must be a mapping, not a %s", what, node->type == YAML_SCALAR_NODE ? "scalar" : "sequence");
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
static int collect_pairs(struct st_loader_t *l, yaml_node_t *map, struct st_pair_vec_t *vec, unsigned depth)
{
    size_t first = vec->num;
    yaml_node_pair_t *p;

    if (depth > MAX_MERGE_DEPTH || ++l->merge_expansions > MAX_MERGE_EXPANSIONS)
        return error_at(l, map, "merge keys nested too deeply");

    for (p = map->data.mapping.pairs.start; p != map->data.mapping.pairs.top; ++p) {
        yaml_node_t *key = node_at(l, p->key), *value = node_at(l, p->value);
        if (key->type != YAML_SCALAR_NODE)
            return error_at(l, key, "a mapping key must be a scalar");
        if (memchr(key->data.scalar.value, '\0', key->data.scalar.length) != NULL)
            return error_at(l, key, "a mapping key contains a NUL character");
        if (is_merge_key(key))
            continue;
        size_t found = find_pair(vec, key);
        if (found != SIZE_MAX) {
            if (found >= first)
                return error_at(l, key, "duplicate key '%s' (first at line %zu)", (const char *)key->data.scalar.value,
                                vec->entries[found].key->start_mark.line + 1);
            continue; /* overridden by a mapping that merges this one */
        }
        vec->entries = xgrow(vec->entries, &vec->cap, vec->num + 1, sizeof(vec->entries[0]));
        vec->entries[vec->num++] = (pair_t){key, value};
    }

    for (p = map->data.mapping.pairs.start; p != map->data.mapping.pairs.top; ++p) {
        yaml_node_t *key = node_at(l, p->key), *value = node_at(l, p->value);
        if (!is_merge_key(key))
            continue;
        if (value->type == YAML_MAPPING_NODE) {
            if (collect_pairs(l, value, vec, depth + 1) != 0)
                return -1;
        } else if (value->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *item = value->data.sequence.items.start; item != value->data.sequence.items.top; ++item) {
                yaml_node_t *src = node_at(l, *item);
                if (src->type != YAML_MAPPING_NODE)
                    return error_at(l, src, "a merge key (<<) takes a mapping or a sequence of mappings");
                if (collect_pairs(l, src, vec, depth + 1) != 0)
                    return -1;
            }
        } else {
            return error_at(l, value, "a merge key (<<) takes a mapping or a sequence of mappings");
        }
    }
    return 0;
}

/* Returns the effective pairs of a mapping node in *pairs (freed when the load ends). */
static int get_pairs(struct st_loader_t *l, yaml_node_t *map, pair_t **pairs, size_t *num)
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

/* scalar conversions */

static int parse_int(struct st_loader_t *l, yaml_node_t *node, const char *what, long long min, long long max, long long *out)
{
    const char *s = get_scalar(l, node, what), *p;
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
    return error_at(l, node, "%s must be an integer between %lld and %lld", what, min, max);
}

/* Parses a number of seconds: finite, and > 0 (or >= 0 when allow_zero). */
static int parse_seconds(struct st_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out)
{
    const char *s = get_scalar(l, node, what);
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
    return error_at(l, node, "%s must be a %s number of seconds", what, allow_zero ? "non-negative" : "positive");
}

/* Parses a byte count, optionally with a K, M or G suffix (powers of 1024). Must be at least 1. */
static int parse_size(struct st_loader_t *l, yaml_node_t *node, const char *what, size_t *out)
{
    const char *s = get_scalar(l, node, what);
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
    return error_at(l, node, "%s must be a positive number of bytes, optionally with a K, M or G suffix", what);
}

static int parse_bool(struct st_loader_t *l, yaml_node_t *node, const char *what, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    const char *s = get_scalar(l, node, what);
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
    return error_at(l, node, "%s must be true or false", what);
}

/* Checks for "http://host..." or "https://host..." (scheme case-insensitive). */
static int is_http_url(const char *s)
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

static void strip_trailing_slashes(char *s)
{
    size_t len = strlen(s);
    while (len != 0 && s[len - 1] == '/')
        s[--len] = '\0';
}

static void add_missing_env(struct st_loader_t *l, const char *name)
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

/*
 * Resolves a scalar that is either a literal or "os.environ/NAME". On success *value is an owned copy, or NULL when
 * the literal is empty or NAME is unset or empty (NAME is then added to missing_env). When env_name is not NULL it
 * receives an owned copy of NAME for the os.environ/ form, else NULL.
 */
static int resolve_value(struct st_loader_t *l, yaml_node_t *node, const char *what, char **value, char **env_name)
{
    const char *s = get_scalar(l, node, what), *name, *env;
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
        return error_at(l, node, "%s: '%s' is not a valid environment variable name", what, name);
    if ((env = getenv(name)) != NULL && *env != '\0')
        *value = xstrdup(env);
    else
        add_missing_env(l, name);
    if (env_name != NULL)
        *env_name = xstrdup(name);
    return 0;
}

/* model_list */

static pgw_route_t *add_route(struct st_loader_t *l, yaml_node_t *entry)
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

static int on_provider_model(struct st_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    static const struct {
        const char *prefix;
        pgw_route_kind_t kind;
    } providers[] = {{"openai/", PGW_ROUTE_OPENAI}, {"anthropic/", PGW_ROUTE_ANTHROPIC}};
    const char *s = get_scalar(l, node, "litellm_params.model");
    const char *slash;

    if (s == NULL)
        return -1;
    for (size_t i = 0; i != sizeof(providers) / sizeof(providers[0]); ++i) {
        size_t plen = strlen(providers[i].prefix);
        if (strncmp(s, providers[i].prefix, plen) == 0) {
            if (s[plen] == '\0')
                return error_at(l, node, "litellm_params.model: empty model name after '%s'", providers[i].prefix);
            route->kind = providers[i].kind;
            route->upstream_model = xstrdup(s + plen);
            return 0;
        }
    }
    if ((slash = strchr(s, '/')) == NULL)
        return error_at(l, node, "litellm_params.model '%s' has no provider prefix (use openai/<bot> or anthropic/<model>)", s);
    return error_at(l, node, "litellm_params.model: unsupported provider '%.*s/' (use openai/<bot> or anthropic/<model>)",
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

static int on_extra_headers(struct st_loader_t *l, pgw_route_t *route, yaml_node_t *node)
{
    pair_t *pairs;
    size_t num;

    if (expect_mapping(l, node, "extra_headers") != 0 || get_pairs(l, node, &pairs, &num) != 0)
        return -1;
    route->extra_headers = xrealloc(NULL, num * sizeof(route->extra_headers[0]));
    for (size_t i = 0; i != num; ++i) {
        const char *name = (const char *)pairs[i].key->data.scalar.value;
        char *value, *env_name;
        if (!is_header_name(name))
            return error_at(l, pairs[i].key, "extra_headers: '%s' is not a valid header name", name);
        for (size_t j = 0; j != route->num_extra_headers; ++j)
            if (strcasecmp(route->extra_headers[j].name, name) == 0)
                return error_at(l, pairs[i].key, "extra_headers: duplicate header '%s'", name);
        if (is_null(pairs[i].value)) {
            value = xstrdup("");
            env_name = NULL;
        } else if (resolve_value(l, pairs[i].value, "extra_headers value", &value, &env_name) != 0) {
            return -1;
        } else if (value == NULL && env_name == NULL) {
            value = xstrdup(""); /* an empty literal */
        }
        route->extra_headers[route->num_extra_headers++] = (pgw_header_t){xstrdup(name), value};
        if (value != NULL && strpbrk(value, "\r\n") != NULL) {
            int ret = env_name != NULL ? error_at(l, pairs[i].value, "extra_headers: $%s holds a line break", env_name)
                                       : error_at(l, pairs[i].value, "extra_headers: the value of '%s' holds a line break", name);
            free(env_name);
            return ret;
        }
        free(env_name);
    }
    return 0;
}

/* ---- extra_body: a YAML mapping written out as JSON object members ---- */

struct st_json_text_t {
    char *buf;
    size_t len, cap;
    int too_large;
};

#define MAX_EXTRA_BODY (64 * 1024)

static void jt_append(struct st_json_text_t *t, const char *s, size_t len)
{
    if (t->len + len > MAX_EXTRA_BODY) {
        t->too_large = 1; /* YAML aliases can multiply a small file: stop growing, fail the load */
        return;
    }
    if (t->len + len + 1 > t->cap) {
        t->cap = (t->len + len + 1) * 2;
        t->buf = xrealloc(t->buf, t->cap);
    }
    memcpy(t->buf + t->len, s, len);
    t->len += len;
    t->buf[t->len] = '\0';
}

static void jt_string(struct st_json_text_t *t, const char *s, size_t len)
{
    jt_append(t, "\"", 1);
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            jt_append(t, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            jt_append(t, esc, 6);
        } else {
            jt_append(t, (const char *)&c, 1);
        }
    }
    jt_append(t, "\"", 1);
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
        if (is_null(node)) {
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

static int jt_node(struct st_loader_t *l, struct st_json_text_t *t, yaml_node_t *node, int depth, int members_only)
{
    if (depth > 32)
        return error_at(l, node, "extra_body is nested too deeply");
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
            if (jt_node(l, t, node_at(l, *item), depth + 1, 0) != 0)
                return -1;
        }
        jt_append(t, "]", 1);
        return 0;
    case YAML_MAPPING_NODE: {
        pair_t *pairs;
        size_t num;
        if (get_pairs(l, node, &pairs, &num) != 0)
            return -1;
        if (!members_only)
            jt_append(t, "{", 1);
        for (size_t i = 0; i != num; ++i) {
            if (pairs[i].key->type != YAML_SCALAR_NODE)
                return error_at(l, pairs[i].key, "extra_body keys must be scalars");
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
        return error_at(l, node, "extra_body holds an unsupported node");
    }
}

static int is_known_param(const yaml_node_t *key)
{
    static const char *const known[] = {"model",          "api_base",    "api_key",       "rpm",        "timeout",
                                        "stream_timeout", "max_retries", "extra_headers", "ssl_verify", "extra_body",
                                        "http2_prior_knowledge", "echo_reasoning", "minimal_schema", "buffer_tools"};
    for (size_t i = 0; i != sizeof(known) / sizeof(known[0]); ++i)
        if (key_is(key, known[i]))
            return 1;
    return 0;
}

static int on_litellm_params(struct st_loader_t *l, pgw_route_t *route, yaml_node_t *params)
{
    pair_t *pairs;
    size_t num;
    yaml_node_t *model = NULL, *api_base = NULL;
    long long n;

    if (expect_mapping(l, params, "litellm_params") != 0 || get_pairs(l, params, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        if (!is_known_param(key)) {
            warn_unknown(l, key, "litellm_params");
        } else if (is_null(value)) {
            /* same as absent */
        } else if (key_is(key, "model")) {
            if (on_provider_model(l, route, value) != 0)
                return -1;
            model = value;
        } else if (key_is(key, "api_base")) {
            api_base = value;
        } else if (key_is(key, "api_key")) {
            if (resolve_value(l, value, "api_key", &route->api_key, &route->api_key_env) != 0)
                return -1;
        } else if (key_is(key, "rpm")) {
            if (parse_int(l, value, "rpm", 0, INT_MAX, &n) != 0)
                return -1;
            route->rpm = (int)n;
        } else if (key_is(key, "timeout")) {
            if (parse_seconds(l, value, "timeout", 0, &route->timeout) != 0)
                return -1;
        } else if (key_is(key, "stream_timeout")) {
            if (parse_seconds(l, value, "stream_timeout", 0, &route->stream_timeout) != 0)
                return -1;
        } else if (key_is(key, "max_retries")) {
            if (parse_int(l, value, "max_retries", 0, 10, &n) != 0)
                return -1;
            route->max_retries = (int)n;
        } else if (key_is(key, "extra_headers")) {
            if (on_extra_headers(l, route, value) != 0)
                return -1;
        } else if (key_is(key, "ssl_verify")) {
            if (parse_bool(l, value, "ssl_verify", &route->ssl_verify) != 0)
                return -1;
            if (!route->ssl_verify)
                pgw_log_warn(MODULE_NAME, "%s:%zu:%zu: route '%s' does not verify the upstream's TLS certificate", l->path,
                             key->start_mark.line + 1, key->start_mark.column + 1, route->model_name);
        } else if (key_is(key, "http2_prior_knowledge")) {
            if (parse_bool(l, value, "http2_prior_knowledge", &route->h2c) != 0)
                return -1;
        } else if (key_is(key, "echo_reasoning")) {
            if (parse_bool(l, value, "echo_reasoning", &route->echo_reasoning) != 0)
                return -1;
        } else if (key_is(key, "minimal_schema")) {
            if (parse_bool(l, value, "minimal_schema", &route->minimal_schema) != 0)
                return -1;
        } else if (key_is(key, "buffer_tools")) {
            if (parse_bool(l, value, "buffer_tools", &route->buffer_tools) != 0)
                return -1;
        } else {
            assert(key_is(key, "extra_body"));
            struct st_json_text_t text = {NULL};
            if (expect_mapping(l, value, "extra_body") != 0 || jt_node(l, &text, value, 0, 1) != 0) {
                free(text.buf);
                return -1;
            }
            if (text.too_large) {
                free(text.buf);
                return error_at(l, value, "extra_body is larger than %d bytes once written out", MAX_EXTRA_BODY);
            }
            free(route->extra_body);
            free(route->extra_body_members);
            route->extra_body = text.len != 0 ? text.buf : NULL;
            route->extra_body_members = text.len != 0 ? pgw_extra_body_parse(text.buf, text.len) : NULL;
            if (text.len == 0)
                free(text.buf);
            else if (route->extra_body_members == NULL) /* what jt_node writes always parses; checked all the same */
                return error_at(l, value, "extra_body does not read back as JSON object members");
        }
    }

    if (model == NULL)
        return error_at(l, params, "model '%s' has no litellm_params.model", route->model_name);

    if (api_base != NULL) {
        char *env_name;
        if (resolve_value(l, api_base, "api_base", &route->api_base, &env_name) != 0)
            return -1;
        if (route->api_base != NULL && !is_http_url(route->api_base)) {
            int ret = env_name != NULL ? error_at(l, api_base, "api_base ($%s) must start with http:// or https://", env_name)
                                       : error_at(l, api_base, "api_base must start with http:// or https://");
            free(env_name);
            return ret;
        }
        if (route->api_base != NULL)
            strip_trailing_slashes(route->api_base);
        else if (env_name == NULL) /* an empty literal counts as absent */
            api_base = NULL;
        free(env_name);
    }
    if (api_base == NULL)
        route->api_base =
            xstrdup(route->kind == PGW_ROUTE_ANTHROPIC ? PGW_DEFAULT_ANTHROPIC_API_BASE : PGW_DEFAULT_OPENAI_API_BASE);
    return 0;
}

static int on_model_entry(struct st_loader_t *l, yaml_node_t *entry)
{
    pgw_config_t *conf = l->conf;
    pair_t *pairs;
    size_t num;
    yaml_node_t *name_node = NULL, *params = NULL;
    const char *name;
    pgw_route_t *route;

    if (expect_mapping(l, entry, "a model_list entry") != 0 || get_pairs(l, entry, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        if (key_is(pairs[i].key, "model_name")) {
            name_node = pairs[i].value;
        } else if (key_is(pairs[i].key, "litellm_params")) {
            params = pairs[i].value;
        } else {
            warn_unknown(l, pairs[i].key, "model_list entry");
        }
    }

    if (name_node == NULL || is_null(name_node))
        return error_at(l, entry, "model_list entry has no model_name");
    if ((name = get_scalar(l, name_node, "model_name")) == NULL)
        return -1;
    if (*name == '\0')
        return error_at(l, name_node, "model_name must not be empty");
    if (strchr(name, '*') == NULL) {
        for (size_t i = 0; i != conf->num_routes; ++i)
            if (!conf->routes[i].is_wildcard && strcmp(conf->routes[i].model_name, name) == 0)
                return error_at(l, name_node, "duplicate model_name '%s' (first at line %u)", name, conf->routes[i].line);
    }

    route = add_route(l, entry);
    route->model_name = xstrdup(name);
    route->is_wildcard = strchr(name, '*') != NULL;

    if (params == NULL || is_null(params))
        return error_at(l, entry, "model '%s' has no litellm_params.model", name);
    return on_litellm_params(l, route, params);
}

static int on_model_list(struct st_loader_t *l, yaml_node_t *node)
{
    if (is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return error_at(l, node, "model_list must be a sequence");
    for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item)
        if (on_model_entry(l, node_at(l, *item)) != 0)
            return -1;
    return 0;
}

/* general_settings, router_settings */

static int on_general_settings(struct st_loader_t *l, yaml_node_t *node)
{
    pair_t *pairs;
    size_t num;

    if (is_null(node))
        return 0;
    if (expect_mapping(l, node, "general_settings") != 0 || get_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        if (key_is(pairs[i].key, "master_key")) {
            if (is_null(pairs[i].value))
                continue;
            if (resolve_value(l, pairs[i].value, "master_key", &l->conf->master_key, &l->conf->master_key_env) != 0)
                return -1;
            /* an empty literal counts as absent, so the LITELLM_MASTER_KEY fallback still applies */
            l->have_master_key = l->conf->master_key != NULL || l->conf->master_key_env != NULL;
        } else {
            warn_unknown(l, pairs[i].key, "general_settings");
        }
    }
    return 0;
}

static int on_router_settings(struct st_loader_t *l, yaml_node_t *node)
{
    pair_t *pairs;
    size_t num;
    long long n;

    if (is_null(node))
        return 0;
    if (expect_mapping(l, node, "router_settings") != 0 || get_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        if (key_is(key, "num_retries")) {
            if (is_null(value))
                continue;
            if (parse_int(l, value, "router_settings.num_retries", 0, 10, &n) != 0)
                return -1;
            l->router_num_retries = (int)n;
        } else if (key_is(key, "timeout")) {
            if (is_null(value))
                continue;
            if (parse_seconds(l, value, "router_settings.timeout", 0, &l->router_timeout) != 0)
                return -1;
        } else {
            warn_unknown(l, key, "router_settings");
        }
    }
    return 0;
}

/* gateway: this project's own section, one table entry per key (in the manner of redis's static_configs) */

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
    {"idle_timeout", KEY_SECONDS, offsetof(pgw_config_t, idle_timeout)},
    {"max_connections", KEY_UINT, offsetof(pgw_config_t, max_connections), 1, 10000000},
    {"graceful_timeout", KEY_SECONDS, offsetof(pgw_config_t, graceful_timeout), 0, 0, 1},
    {"keys", KEY_KEYS},
    {"metrics_auth", KEY_STRING, offsetof(pgw_config_t, metrics_auth)},
    {"auth", KEY_AUTH},
    {"tailscale_socket", KEY_STRING, offsetof(pgw_config_t, tailscale_socket)},
    {"upstream_rpm", KEY_UINT, offsetof(pgw_config_t, upstream_rpm), 0, 1000000},
    {"upstream_burst", KEY_UINT, offsetof(pgw_config_t, upstream_burst), 0, 1000000},
    {"queue_timeout", KEY_SECONDS, offsetof(pgw_config_t, queue_timeout), 0, 0, 1},
};

static int set_string(struct st_loader_t *l, yaml_node_t *node, const char *what, char **field)
{
    const char *s = get_scalar(l, node, what);
    if (s == NULL)
        return -1;
    if (*s == '\0')
        return error_at(l, node, "%s must not be empty", what);
    free(*field);
    *field = xstrdup(s);
    return 0;
}

static int on_tls(struct st_loader_t *l, yaml_node_t *node)
{
    pgw_config_t *conf = l->conf;
    pair_t *pairs;
    size_t num;

    if (expect_mapping(l, node, "gateway.tls") != 0 || get_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        if (key_is(key, "cert_file")) {
            if (!is_null(value) && set_string(l, value, "gateway.tls.cert_file", &conf->tls_cert_file) != 0)
                return -1;
        } else if (key_is(key, "key_file")) {
            if (!is_null(value) && set_string(l, value, "gateway.tls.key_file", &conf->tls_key_file) != 0)
                return -1;
        } else {
            warn_unknown(l, key, "gateway.tls");
        }
    }
    if (conf->tls_cert_file != NULL && conf->tls_key_file == NULL)
        return error_at(l, node, "gateway.tls has cert_file but no key_file");
    if (conf->tls_cert_file == NULL && conf->tls_key_file != NULL)
        return error_at(l, node, "gateway.tls has key_file but no cert_file");
    return 0;
}


/* gateway.keys */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int on_key_entry(struct st_loader_t *l, yaml_node_t *entry)
{
    pgw_config_t *conf = l->conf;
    pair_t *pairs;
    size_t num;
    yaml_node_t *name_node = NULL, *key_node = NULL;

    if (expect_mapping(l, entry, "gateway.keys entry") != 0 || get_pairs(l, entry, &pairs, &num) != 0)
        return -1;
    conf->keys = xrealloc(conf->keys, (conf->num_keys + 1) * sizeof(conf->keys[0]));
    pgw_key_t *key = conf->keys + conf->num_keys++;
    memset(key, 0, sizeof(*key));
    key->line = (unsigned)entry->start_mark.line + 1;
    key->column = (unsigned)entry->start_mark.column + 1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *k = pairs[i].key, *v = pairs[i].value;
        long long n;
        if (key_is(k, "name")) {
            name_node = v;
        } else if (key_is(k, "key")) {
            key_node = v;
        } else if (key_is(k, "rpm")) {
            if (parse_int(l, v, "gateway.keys.rpm", 0, INT_MAX, &n) != 0)
                return -1;
            key->rpm = (int)n;
        } else if (key_is(k, "models")) {
            if (v->type != YAML_SEQUENCE_NODE)
                return error_at(l, v, "gateway.keys.models must be a sequence of model names or patterns");
            for (yaml_node_item_t *item = v->data.sequence.items.start; item != v->data.sequence.items.top; ++item) {
                const char *pattern = get_scalar(l, node_at(l, *item), "gateway.keys.models entry");
                if (pattern == NULL)
                    return -1;
                key->models = xrealloc(key->models, (key->num_models + 1) * sizeof(key->models[0]));
                key->models[key->num_models++] = xstrdup(pattern);
            }
        } else {
            warn_unknown(l, k, "gateway.keys entry");
        }
    }
    const char *name;
    if (name_node == NULL || is_null(name_node))
        return error_at(l, entry, "gateway.keys entry has no name");
    if ((name = get_scalar(l, name_node, "gateway.keys.name")) == NULL)
        return -1;
    if (*name == '\0' || strcmp(name, "master") == 0)
        return error_at(l, name_node, "gateway.keys.name must be a non-empty name other than 'master'");
    for (size_t i = 0; i + 1 < conf->num_keys; ++i)
        if (strcmp(conf->keys[i].name, name) == 0)
            return error_at(l, name_node, "duplicate key name '%s' (first at line %u)", name, conf->keys[i].line);
    key->name = xstrdup(name);
    if (key_node == NULL || is_null(key_node))
        return error_at(l, entry, "key '%s' has no key: give a literal, os.environ/NAME or sha256:<64 hex digits>", name);

    const char *text = get_scalar(l, key_node, "gateway.keys.key");
    if (text == NULL)
        return -1;
    if (strncmp(text, "sha256:", 7) == 0) {
        const char *hex = text + 7;
        if (strlen(hex) != 64)
            return error_at(l, key_node, "key '%s': sha256: takes 64 hex digits", name);
        for (size_t i = 0; i != 32; ++i) {
            int hi = hex_digit(hex[i * 2]), lo = hex_digit(hex[i * 2 + 1]);
            if (hi < 0 || lo < 0)
                return error_at(l, key_node, "key '%s': sha256: takes 64 hex digits", name);
            key->sha256[i] = (unsigned char)(hi << 4 | lo);
        }
        key->has_key = 1;
        return 0;
    }
    char *secret, *env_name;
    if (resolve_value(l, key_node, "gateway.keys.key", &secret, &env_name) != 0)
        return -1;
    free(env_name);
    if (secret != NULL) {
        SHA256((const unsigned char *)secret, strlen(secret), key->sha256);
        key->has_key = 1;
        free_secret(secret);
    }
    return 0;
}

static int on_keys(struct st_loader_t *l, yaml_node_t *node)
{
    if (node->type != YAML_SEQUENCE_NODE)
        return error_at(l, node, "gateway.keys must be a sequence of {name, key, models, rpm} entries");
    for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item)
        if (on_key_entry(l, node_at(l, *item)) != 0)
            return -1;
    return 0;
}

int pgw_key_allows_model(const pgw_key_t *key, const char *model, size_t model_len)
{
    if (key->num_models == 0)
        return 1;
    for (size_t i = 0; i != key->num_models; ++i)
        if (pgw_wildcard_match(key->models[i], model, model_len))
            return 1;
    return 0;
}

static int on_gateway_key(struct st_loader_t *l, const struct st_gateway_key_t *k, yaml_node_t *value)
{
    char what[64];
    void *field = (char *)l->conf + k->offset;
    long long n;
    pgw_log_level_t level;

    snprintf(what, sizeof(what), "gateway.%s", k->name);
    switch (k->type) {
    case KEY_STRING:
        if (set_string(l, value, what, field) != 0)
            return -1;
        if (strcmp(k->name, "metrics_auth") == 0 && strcmp(*(char **)field, "master") != 0 &&
            strcmp(*(char **)field, "keys") != 0 && strcmp(*(char **)field, "none") != 0)
            return error_at(l, value, "%s must be one of master, keys, none", what);
        return 0;
    case KEY_URL:
        if (set_string(l, value, what, field) != 0)
            return -1;
        if (!is_http_url(*(char **)field))
            return error_at(l, value, "%s must start with http:// or https://", what);
        strip_trailing_slashes(*(char **)field);
        return 0;
    case KEY_LOG_LEVEL:
        if (set_string(l, value, what, field) != 0)
            return -1;
        if (pgw_log_parse_level(*(char **)field, &level) != 0)
            return error_at(l, value, "%s must be one of error, warn, info, debug", what);
        return 0;
    case KEY_UINT:
        if (parse_int(l, value, what, k->min, k->max, &n) != 0)
            return -1;
        *(unsigned *)field = (unsigned)n;
        return 0;
    case KEY_SIZE:
        return parse_size(l, value, what, field);
    case KEY_SECONDS:
        return parse_seconds(l, value, what, k->allow_zero, field);
    case KEY_TLS:
        return on_tls(l, value);
    case KEY_KEYS:
        return on_keys(l, value);
    case KEY_AUTH: {
        const char *mode = get_scalar(l, value, what);
        if (mode == NULL)
            return -1;
        if (strcmp(mode, "tailscale") == 0)
            l->conf->auth_tailscale = 1;
        else if (strcmp(mode, "keys") == 0)
            l->conf->auth_tailscale = 0;
        else
            return error_at(l, value, "%s must be keys or tailscale", what);
        return 0;
    }
    }
    assert(!"unknown key type");
    return -1;
}

static int on_gateway(struct st_loader_t *l, yaml_node_t *node)
{
    pair_t *pairs;
    size_t num, k;

    if (is_null(node))
        return 0;
    if (expect_mapping(l, node, "gateway") != 0 || get_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        for (k = 0; k != sizeof(gateway_keys) / sizeof(gateway_keys[0]); ++k)
            if (key_is(pairs[i].key, gateway_keys[k].name))
                break;
        if (k == sizeof(gateway_keys) / sizeof(gateway_keys[0])) {
            warn_unknown(l, pairs[i].key, "gateway");
        } else if (!is_null(pairs[i].value) && on_gateway_key(l, gateway_keys + k, pairs[i].value) != 0) {
            return -1;
        }
    }
    return 0;
}

/* the document */

static int on_root(struct st_loader_t *l, yaml_node_t *root)
{
    pair_t *pairs;
    size_t num;

    if (is_null(root))
        return 0; /* a file holding only comments */
    if (expect_mapping(l, root, "the top level") != 0 || get_pairs(l, root, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *key = pairs[i].key, *value = pairs[i].value;
        int ret = 0;
        if (key_is(key, "model_list")) {
            ret = on_model_list(l, value);
        } else if (key_is(key, "general_settings")) {
            ret = on_general_settings(l, value);
        } else if (key_is(key, "router_settings")) {
            ret = on_router_settings(l, value);
        } else if (key_is(key, "gateway")) {
            ret = on_gateway(l, value);
        } else {
            warn_ignored(l, key, "top level", "unsupported section");
        }
        if (ret != 0)
            return -1;
    }
    return 0;
}

/* Applies what can only be decided once the whole file is read. */
static void finish(struct st_loader_t *l)
{
    pgw_config_t *conf = l->conf;

    if (conf->num_routes == 0)
        pgw_log_warn(MODULE_NAME, "%s: model_list is empty: every model will be refused", l->path);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        pgw_route_t *route = conf->routes + i;
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

static int syntax_error(struct st_loader_t *l, yaml_parser_t *parser, const char *buf, size_t len)
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
    struct st_loader_t l = {.conf = conf, .path = path, .err = err, .errsz = errsz, .router_timeout = -1, .router_num_retries = -1};
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
            error_at(&l, extra_root, "only one YAML document is allowed");
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
    free(conf->metrics_auth);
    free(conf->tailscale_socket);
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

/* lookups */

int pgw_wildcard_match(const char *pattern, const char *s, size_t len)
{
    const char *p = pattern, *resume = NULL; /* resume: just after the last '*' seen */
    size_t i = 0, resume_i = 0;

    while (i != len) {
        if (*p == '*') {
            resume = ++p;
            resume_i = i;
        } else if (*p != '\0' && *p == s[i]) {
            ++p;
            ++i;
        } else if (resume != NULL) {
            /* let the last '*' swallow one more character and retry */
            p = resume;
            i = ++resume_i;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        ++p;
    return *p == '\0';
}

const pgw_route_t *pgw_config_find_route(const pgw_config_t *conf, const char *model, size_t model_len)
{
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *route = conf->routes + i;
        if (!route->is_wildcard && strlen(route->model_name) == model_len && memcmp(route->model_name, model, model_len) == 0)
            return route;
    }
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *route = conf->routes + i;
        if (route->is_wildcard && pgw_wildcard_match(route->model_name, model, model_len))
            return route;
    }
    return NULL;
}

int pgw_route_upstream_model(const pgw_route_t *route, const char *client_model, size_t client_model_len, char *buf, size_t bufsz)
{
    size_t len = 0;

    for (const char *p = route->upstream_model; *p != '\0'; ++p) {
        const char *src = *p == '*' ? client_model : p;
        size_t n = *p == '*' ? client_model_len : 1;
        if (n >= bufsz - len || len + n > INT_MAX)
            return -1;
        memcpy(buf + len, src, n);
        len += n;
    }
    if (len >= bufsz)
        return -1;
    buf[len] = '\0';
    return (int)len;
}

/* Levenshtein distance, ASCII case-insensitive, over two rows of `row` (each at least strlen(b) + 1 long). */
static size_t edit_distance(const char *a, size_t alen, const char *b, size_t *row)
{
    size_t blen = strlen(b);

    for (size_t j = 0; j <= blen; ++j)
        row[j] = j;
    for (size_t i = 1; i <= alen; ++i) {
        size_t diag = row[0]; /* row[i-1][j-1] */
        row[0] = i;
        for (size_t j = 1; j <= blen; ++j) {
            size_t up = row[j]; /* row[i-1][j] */
            size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
            size_t best = diag + cost;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[blen];
}

size_t pgw_config_suggest(const pgw_config_t *conf, const char *model, size_t model_len, const char **out, size_t max)
{
    size_t *dist, *row, rowlen = 1, found = 0;

    if (max == 0 || model_len > MAX_SUGGEST_INPUT || conf->num_routes == 0)
        return 0;
    for (size_t i = 0; i != conf->num_routes; ++i) {
        size_t n = strlen(conf->routes[i].model_name) + 1;
        if (n > rowlen)
            rowlen = n;
    }
    dist = xrealloc(NULL, conf->num_routes * sizeof(*dist));
    row = xrealloc(NULL, rowlen * sizeof(*row));
    for (size_t i = 0; i != conf->num_routes; ++i)
        dist[i] = conf->routes[i].is_wildcard ? SIZE_MAX : edit_distance(model, model_len, conf->routes[i].model_name, row);

    /* selection of the `max` smallest; a strict '<' keeps file order among equals */
    while (found != max) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i != conf->num_routes; ++i)
            if (dist[i] != SIZE_MAX && (best == SIZE_MAX || dist[i] < dist[best]))
                best = i;
        if (best == SIZE_MAX)
            break;
        out[found++] = conf->routes[best].model_name;
        dist[best] = SIZE_MAX;
    }
    free(row);
    free(dist);
    return found;
}
