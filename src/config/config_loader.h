/* poe-gateway: MIT licence. The configuration loader's insides: what src/config/config.c (the file, the document walk, errors,
 * value conversions) shares with the files that read one section each, src/config/config_routes.c (model_list,
 * router_settings), src/config/config_fallbacks.c (fallbacks, litellm_settings), src/config/config_gateway.c (gateway:)
 * and src/config/config_ledger.c (cost control). Only those include this header; everyone else sees the finished
 * pgw_config_t of config.h. */
#ifndef PGW_CONFIG_LOADER_H
#define PGW_CONFIG_LOADER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "config/config.h"

/* One key and its value in a mapping, after merge keys (`<<`) were applied. Both nodes belong to the document. */
typedef struct st_pgw_loader_pair_t {
    yaml_node_t *key;
    yaml_node_t *value;
} pgw_loader_pair_t;

/* The state of one pgw_config_load call. */
typedef struct st_pgw_loader_t {
    pgw_config_t *conf; /* being filled; pgw_config_load disposes it on error */
    const char *path;   /* the file, for messages */
    yaml_document_t doc;
    char *err; /* the caller's buffer for the one error line */
    size_t errsz;
    /* pair arrays handed out by pgw_loader_pairs, freed when the load ends */
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
} pgw_loader_t;

/* allocation: out of memory ends the process, so callers never check for NULL */

static inline void *xrealloc(void *p, size_t sz)
{
    if ((p = realloc(p, sz == 0 ? 1 : sz)) == NULL) {
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    }
    return p;
}

static inline char *xstrndup(const char *s, size_t len)
{
    char *p = xrealloc(NULL, len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static inline char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* frees a string that may hold a credential, wiping it first */
static inline void free_secret(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* errors, warnings and nodes (src/config/config.c) */

/**
 * Writes "file:line:column: message" for `node`'s position into the caller's error buffer, as one line. Returns -1, so
 * that callers can `return pgw_loader_error(...)`.
 */
__attribute__((format(printf, 3, 4))) int pgw_loader_error(pgw_loader_t *l, const yaml_node_t *node, const char *fmt, ...);
/** The same at a position rather than a node (libyaml's syntax errors). */
int pgw_loader_error_at_mark(pgw_loader_t *l, yaml_mark_t mark, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/**
 * Logs "file:line:column: <section>: ignoring unknown key 'key'", once per key name and section for the whole load.
 */
void pgw_loader_warn_unknown(pgw_loader_t *l, const yaml_node_t *key, const char *section);
/**
 * For a key of the gateway's own sections (gateway:, gateway.tls, a gateway.keys entry) that is none of `known`: logs
 * "file:line:column: <section>: unknown key 'key'; did you mean 'nearest'? (ignored)" once per key name and section, and
 * records the line in conf->unknown_keys, which --check-config refuses. (LiteLLM's sections keep
 * pgw_loader_warn_unknown: their other keys are LiteLLM's, not typos.)
 */
void pgw_loader_unknown_own_key(pgw_loader_t *l, const yaml_node_t *key, const char *section, const char *const *known,
                                size_t num_known);
/** The name in `known` nearest to `name` (edit distance, case-insensitive), or NULL when none is within a third of its
 * length (at least 2 edits). */
const char *pgw_loader_nearest_name(const char *name, const char *const *known, size_t num_known);
/** Warns once per key and section that `key` is ignored, saying `what` it is ("unsupported section", ...). */
void pgw_loader_warn_ignored(pgw_loader_t *l, const yaml_node_t *key, const char *section, const char *what);

/**
 * The node with document id `id` (never NULL: ids come from the document itself).
 */
yaml_node_t *pgw_loader_node(pgw_loader_t *l, int id);

/**
 * 1 when `node` is YAML null (a plain "", "~" or "null"): the loader treats such a value as absent.
 */
int pgw_yaml_is_null(const yaml_node_t *node);

/**
 * 1 when the scalar key `key` is `name`.
 */
int pgw_yaml_key_is(const yaml_node_t *key, const char *name);

/**
 * The text of a scalar node (owned by the document), or NULL after setting the error (`what` names the value).
 */
const char *pgw_loader_scalar(pgw_loader_t *l, yaml_node_t *node, const char *what);

/**
 * 0 when `node` is a mapping, else -1 with the error set.
 */
int pgw_loader_expect_mapping(pgw_loader_t *l, yaml_node_t *node, const char *what);

/**
 * The effective pairs of mapping `map` in *pairs (freed when the load ends) and their number in *num: its own keys in
 * file order, then those merged with `<<` that it does not override. A duplicate key is an error. Returns 0 or -1.
 */
int pgw_loader_pairs(pgw_loader_t *l, yaml_node_t *map, pgw_loader_pair_t **pairs, size_t *num);

/* value conversions (src/config/config.c): each returns 0, or -1 with an error naming `what` and what it must be */

/**
 * A decimal integer (digits after an optional sign) between `min` and `max`.
 */
int pgw_loader_int(pgw_loader_t *l, yaml_node_t *node, const char *what, long long min, long long max, long long *out);

/**
 * A finite number of seconds, > 0 (or >= 0 when `allow_zero`).
 */
int pgw_loader_seconds(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out);

/**
 * A byte count of at least 1, optionally with a K, M or G suffix (powers of 1024).
 */
int pgw_loader_size(pgw_loader_t *l, yaml_node_t *node, const char *what, size_t *out);

/**
 * true / false (and YAML 1.1's yes / no / on / off, in three casings).
 */
int pgw_loader_bool(pgw_loader_t *l, yaml_node_t *node, const char *what, int *out);

/**
 * A non-empty string, copied into *field (an owned string it replaces).
 */
int pgw_loader_string(pgw_loader_t *l, yaml_node_t *node, const char *what, char **field);

/**
 * A literal or "os.environ/NAME". *value becomes an owned copy, or NULL when the literal is empty or NAME is unset or
 * empty (NAME is then recorded once in conf->missing_env). When env_name is not NULL it receives an owned copy of NAME
 * for the os.environ/ form, else NULL. An invalid NAME is an error.
 */
int pgw_loader_env_value(pgw_loader_t *l, yaml_node_t *node, const char *what, char **value, char **env_name);

/**
 * 1 for "http://host..." or "https://host..." (scheme case-insensitive).
 */
int pgw_loader_is_http_url(const char *s);

/**
 * Removes the trailing '/' characters of `s` in place.
 */
void pgw_loader_strip_slashes(char *s);

/* the sections */

/**
 * Reads model_list into conf->routes (src/config/config_routes.c). Timeouts and retries a route does not set stay unset (< 0)
 * until pgw_loader_finish_routes.
 */
int pgw_loader_on_model_list(pgw_loader_t *l, yaml_node_t *node);

/**
 * Reads router_settings: the route defaults num_retries and timeout (src/config/config_routes.c), and the fallback keys
 * (pgw_loader_on_fallback_key).
 */
int pgw_loader_on_router_settings(pgw_loader_t *l, yaml_node_t *node);

/**
 * A key of router_settings or litellm_settings (`section`) that belongs to fallbacks (src/config/config_fallbacks.c):
 * `fallbacks` and `context_window_fallbacks` in both, `allowed_fails` and `cooldown_time` in router_settings. Returns 0
 * when it was read, 1 when the key is not one of these, -1 after an error.
 */
int pgw_loader_on_fallback_key(pgw_loader_t *l, const char *section, yaml_node_t *key, yaml_node_t *value);

/**
 * Reads litellm_settings: its fallback lists; every other key is warned about (src/config/config_fallbacks.c).
 */
int pgw_loader_on_litellm_settings(pgw_loader_t *l, yaml_node_t *node);

/**
 * Once the whole file is read: resolves every name of the fallback lists to the route that serves it. A name no route
 * serves, a model given two lists of one kind, or a model falling back to itself is an error at the name's position.
 * Returns 0 or -1.
 */
int pgw_loader_finish_fallbacks(pgw_loader_t *l);

/** Frees conf->fallbacks (called by pgw_config_dispose). */
void pgw_config_dispose_fallbacks(pgw_config_t *conf);

/**
 * Once the whole file is read: gives routes router_settings' defaults (or the built-in ones) and warns about a
 * wildcard route that an earlier one always shadows (src/config/config_routes.c).
 */
void pgw_loader_finish_routes(pgw_loader_t *l);

/**
 * Reads the gateway: section (src/config/config_gateway.c).
 */
int pgw_loader_on_gateway(pgw_loader_t *l, yaml_node_t *node);

/* cost control (src/config/config_ledger.c) */

/** gateway.ledger: {enabled, path, retention_days, max_bytes, reconcile_interval}. */
int pgw_loader_on_ledger(pgw_loader_t *l, yaml_node_t *node);
/** A budget mapping {daily, monthly, unit: usd | points} named `what` in messages, into *out. */
int pgw_loader_on_budget(pgw_loader_t *l, yaml_node_t *node, const char *what, pgw_budget_t *out);
/** gateway.budgets: a mapping of caller names (tailnet logins) to budgets. */
int pgw_loader_on_budgets(pgw_loader_t *l, yaml_node_t *node);
/** A finite number >= 0 (> 0 unless `allow_zero`), e.g. an amount of USD. */
int pgw_loader_number(pgw_loader_t *l, yaml_node_t *node, const char *what, int allow_zero, double *out);

#endif
