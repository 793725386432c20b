/* poe-gateway: MIT licence. Per-request lookups in a loaded configuration: which route serves a model name, the name
 * sent upstream, "did you mean" suggestions, and a named key's allow list. */
#ifndef PGW_ROUTE_MATCH_H
#define PGW_ROUTE_MATCH_H

#include <stddef.h>
#include "config/config.h"

/* What a picker alias begins with (docs/request-path.md#models). */
#define PGW_PICKER_ALIAS_PREFIX "claude-via-poe-"

/**
 * Finds the route for a client model name: an exact (non-wildcard) model_name first, compared case-sensitively, then a
 * picker alias (pgw_config_find_alias), else the first wildcard route in file order whose pattern matches. `*` matches
 * any run of characters, including none. Returns NULL when nothing matches.
 */
const pgw_route_t *pgw_config_find_route(const pgw_config_t *conf, const char *model, size_t model_len);

/**
 * Returns 1 when Claude Code's model picker keeps a discovered model id: it begins with "claude" or "anthropic", ASCII
 * case-insensitively (the picker's rule; some builds only look for the word anywhere, which this implies).
 */
int pgw_picker_keeps(const char *id, size_t len);

/**
 * Writes the picker alias of `route` into `buf` (NUL-terminated): PGW_PICKER_ALIAS_PREFIX followed by its model_name.
 * Returns the alias's length, or 0 when the route has none: a wildcard, a name the picker keeps, an alias that is
 * another route's exact model_name (that route wins), or one that does not fit in `bufsz`.
 */
size_t pgw_route_picker_alias(const pgw_config_t *conf, const pgw_route_t *route, char *buf, size_t bufsz);

/**
 * Finds the route whose picker alias `model` is (see pgw_route_picker_alias), or NULL. An exact model_name always wins
 * over an alias, so this is NULL for any name a route is configured under.
 */
const pgw_route_t *pgw_config_find_alias(const pgw_config_t *conf, const char *model, size_t model_len);

/**
 * Returns 1 when `pattern` (with '*' wildcards) matches the whole of `s`.
 */
int pgw_wildcard_match(const char *pattern, const char *s, size_t len);

/**
 * Writes the upstream model name for a request into `buf` (NUL-terminated): the route's upstream_model with each '*'
 * replaced by the client's model name on a wildcard route, by the route's own model_name on an exact one (the same name,
 * unless the client used the route's picker alias). Returns the length, or -1 when it does not fit.
 */
int pgw_route_upstream_model(const pgw_route_t *route, const char *client_model, size_t client_model_len, char *buf, size_t bufsz);

/**
 * Writes Poe's name for a Claude model into `buf` (NUL-terminated, cut to fit): an Anthropic id loses its date and the
 * hyphens between digits become dots (claude-sonnet-4-5-20250929 -> claude-sonnet-4.5); letters are lowered
 * (Claude-Sonnet-4.5 -> claude-sonnet-4.5). Both of Poe's endpoints accept that name.
 */
void pgw_poe_claude_name(const char *model, char *buf, size_t bufsz);

/**
 * For an `openai/` route that sends a Claude model through chat/completions, which gets no prompt caching: writes the
 * `model:` value that would send it through Poe's /v1/messages instead (`anthropic/claude-sonnet-4.5`) into `buf` and
 * returns 1. Returns 0 for every other route. Used by --check-config and doctor (docs/config.md#claude-on-openai-routes).
 */
int pgw_route_caching_hint(const pgw_route_t *route, char *buf, size_t bufsz);

/**
 * Finds up to `max` configured non-wildcard model names closest to `model` (edit distance), closest first, for
 * "did you mean" messages. Returns how many were written to `out`.
 */
size_t pgw_config_suggest(const pgw_config_t *conf, const char *model, size_t model_len, const char **out, size_t max);

/**
 * Returns 1 when `key` may use the model `model` (its allow list is empty, or one of its patterns matches).
 */
int pgw_key_allows_model(const pgw_key_t *key, const char *model, size_t model_len);

/**
 * The fallback list (docs/config.md#fallbacks) for a request for `model` served by `route`: of the kind asked
 * (`context_window` 1 for context_window_fallbacks, 0 for fallbacks), the entry naming the model itself, else the entry
 * naming the route's model_name (a wildcard route's list covers every name it serves). NULL when there is none.
 */
const pgw_fallbacks_t *pgw_config_find_fallbacks(const pgw_config_t *conf, int context_window, const char *model, size_t model_len,
                                                 const pgw_route_t *route);

#endif
