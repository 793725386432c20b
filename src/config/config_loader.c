/* poe-gateway: MIT licence. What every section of the configuration loader uses (config_loader.h): errors with their
 * file:line:column, warnings for keys this gateway ignores, merged mappings (`<<: *x`) with duplicate keys refused,
 * conversions of scalars (integers, seconds, sizes, booleans, strings, URLs) and `os.environ/NAME` values. The loader's
 * own walk (src/config/config.c) and its sections (src/config/config_routes.c, src/config/config_fallbacks.c,
 * src/config/config_gateway.c) call these; these call none of them, so the loader's files depend on this one and never the
 * other way. */
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
#define ENV_PREFIX "os.environ/"
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

int pgw_loader_error_at_mark(pgw_loader_t *l, yaml_mark_t mark, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    verror_at(l, mark, fmt, args);
    va_end(args);
    return -1;
}

/* 1 the first time `key` is reported for `section` in this load, else 0. */
static int first_report(pgw_loader_t *l, const char *name, const char *section)
{
    size_t idlen = strlen(section) + 1 + strlen(name) + 1;
    char *id = xrealloc(NULL, idlen);
    snprintf(id, idlen, "%s.%s", section, name);
    for (size_t i = 0; i != l->num_warned; ++i) {
        if (strcmp(l->warned[i], id) == 0) {
            free(id);
            return 0;
        }
    }
    l->warned = xrealloc(l->warned, (l->num_warned + 1) * sizeof(l->warned[0]));
    l->warned[l->num_warned++] = id;
    return 1;
}

/* Logs "file:line:col: <section>: ignoring <what> 'key'" unless that key was already reported for that section. */
void pgw_loader_warn_ignored(pgw_loader_t *l, const yaml_node_t *key, const char *section, const char *what)
{
    const char *name = (const char *)key->data.scalar.value;
    if (first_report(l, name, section))
        pgw_log_warn(MODULE_NAME, "%s:%zu:%zu: %s: ignoring %s '%s'", l->path, key->start_mark.line + 1, key->start_mark.column + 1,
                     section, what, name);
}

/* Levenshtein distance between two short names, ASCII case-insensitive; names of 64 bytes or more count as far apart.
 * (route_match.c has the same measure for client model names, unbounded; this one needs no allocation.) */
static size_t name_distance(const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b), row[64];

    if (alen >= 64 || blen >= 64)
        return SIZE_MAX;
    for (size_t j = 0; j <= blen; ++j)
        row[j] = j;
    for (size_t i = 1; i <= alen; ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= blen; ++j) {
            size_t up = row[j], best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
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

const char *pgw_loader_nearest_name(const char *name, const char *const *known, size_t num_known)
{
    size_t best = SIZE_MAX, limit = strlen(name) / 3 > 2 ? strlen(name) / 3 : 2;
    const char *found = NULL;

    for (size_t i = 0; i != num_known; ++i) {
        size_t d = name_distance(name, known[i]);
        if (d <= limit && d < best) {
            best = d;
            found = known[i];
        }
    }
    return found;
}

void pgw_loader_unknown_own_key(pgw_loader_t *l, const yaml_node_t *key, const char *section, const char *const *known,
                                size_t num_known)
{
    const char *name = (const char *)key->data.scalar.value, *near = pgw_loader_nearest_name(name, known, num_known);
    char line[512];
    pgw_config_t *conf = l->conf;

    if (!first_report(l, name, section))
        return;
    snprintf(line, sizeof(line), "%s:%zu:%zu: %s: unknown key '%s'%s%s%s", l->path, key->start_mark.line + 1,
             key->start_mark.column + 1, section, name, near != NULL ? "; did you mean '" : "", near != NULL ? near : "",
             near != NULL ? "'?" : "");
    pgw_log_warn(MODULE_NAME, "%s (ignored)", line);
    conf->unknown_keys = xrealloc(conf->unknown_keys, (conf->num_unknown_keys + 1) * sizeof(conf->unknown_keys[0]));
    conf->unknown_keys[conf->num_unknown_keys++] = xstrdup(line);
}

void pgw_loader_warn_unknown(pgw_loader_t *l, const yaml_node_t *key, const char *section)
{
    pgw_loader_warn_ignored(l, key, section, "unknown key");
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

/* A finite number, not negative (nor zero unless `allow_zero`); `unit` ends the error message ("" or " of seconds"). */
static int number(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, const char *unit, double *out)
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
    return pgw_loader_error(l, node, "%s must be a %s number%s", what, allow_zero ? "non-negative" : "positive", unit);
}

int pgw_loader_number(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out)
{
    return number(l, node, what, allow_zero, "", out);
}

int pgw_loader_seconds(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out)
{
    return number(l, node, what, allow_zero, " of seconds", out);
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

static void add_missing_env(pgw_loader_t *l, const char *name, const char *what)
{
    pgw_config_t *conf = l->conf;
    unsigned use = strcmp(what, "gateway.keys.key") == 0 ? PGW_ENV_USE_KEY
                   : strcmp(what, "master_key") == 0     ? PGW_ENV_USE_MASTER
                                                         : PGW_ENV_USE_ROUTE;
    for (size_t i = 0; i != conf->num_missing_env; ++i) {
        if (strcmp(conf->missing_env[i], name) == 0) {
            conf->missing_env_uses[i] |= use;
            return;
        }
    }
    conf->missing_env = xrealloc(conf->missing_env, (conf->num_missing_env + 1) * sizeof(conf->missing_env[0]));
    conf->missing_env_uses = xrealloc(conf->missing_env_uses, (conf->num_missing_env + 1) * sizeof(conf->missing_env_uses[0]));
    conf->missing_env_uses[conf->num_missing_env] = use;
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
    if ((env = pgw_dotenv_getenv(name)) != NULL && *env != '\0')
        *value = xstrdup(env);
    else
        add_missing_env(l, name, what);
    if (env_name != NULL)
        *env_name = xstrdup(name);
    return 0;
}

