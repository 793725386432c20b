/* poe-gateway: MIT licence. Per-request lookups in a loaded configuration: the route for a model name, the name sent
 * upstream, "did you mean" suggestions, a named key's allow list, Poe's name for a Claude model.
 *
 * Everything here reads a pgw_config_t that no longer changes (a generation's), allocates nothing that outlives the
 * call, and knows no YAML; the loader uses only pgw_wildcard_match, to warn about a wildcard route that an earlier one
 * shadows. The rules, exact names before picker aliases before wildcards and wildcards in file order, are
 * docs/config.md#routing-a-model-name; picker aliases are docs/request-path.md#models.
 */
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <h2o/memory.h>
#include "config/route_match.h"

#define MAX_SUGGEST_INPUT 256 /* longer client model names get no suggestions (bounds the edit-distance work) */

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

static const pgw_route_t *find_exact(const pgw_config_t *conf, const char *model, size_t model_len)
{
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *route = conf->routes + i;
        if (!route->is_wildcard && strlen(route->model_name) == model_len && memcmp(route->model_name, model, model_len) == 0)
            return route;
    }
    return NULL;
}

int pgw_picker_keeps(const char *id, size_t len)
{
    return (len >= 6 && strncasecmp(id, "claude", 6) == 0) || (len >= 9 && strncasecmp(id, "anthropic", 9) == 0);
}

size_t pgw_route_picker_alias(const pgw_config_t *conf, const pgw_route_t *route, char *buf, size_t bufsz)
{
    size_t name_len = strlen(route->model_name), len = sizeof(PGW_PICKER_ALIAS_PREFIX) - 1 + name_len;
    if (route->is_wildcard || pgw_picker_keeps(route->model_name, name_len) || len >= bufsz)
        return 0;
    memcpy(buf, PGW_PICKER_ALIAS_PREFIX, sizeof(PGW_PICKER_ALIAS_PREFIX) - 1);
    memcpy(buf + sizeof(PGW_PICKER_ALIAS_PREFIX) - 1, route->model_name, name_len + 1);
    return find_exact(conf, buf, len) == NULL ? len : 0;
}

const pgw_route_t *pgw_config_find_alias(const pgw_config_t *conf, const char *model, size_t model_len)
{
    size_t plen = sizeof(PGW_PICKER_ALIAS_PREFIX) - 1;
    if (model_len <= plen || memcmp(model, PGW_PICKER_ALIAS_PREFIX, plen) != 0 || find_exact(conf, model, model_len) != NULL)
        return NULL;
    const pgw_route_t *route = find_exact(conf, model + plen, model_len - plen);
    return route != NULL && !pgw_picker_keeps(route->model_name, model_len - plen) ? route : NULL;
}

const pgw_route_t *pgw_config_find_route(const pgw_config_t *conf, const char *model, size_t model_len)
{
    const pgw_route_t *route;
    if ((route = find_exact(conf, model, model_len)) != NULL || (route = pgw_config_find_alias(conf, model, model_len)) != NULL)
        return route;
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

    /* an exact route's '*' is its own name: a client that used the picker alias must not reach Poe under that alias */
    if (!route->is_wildcard) {
        client_model = route->model_name;
        client_model_len = strlen(route->model_name);
    }
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
    dist = h2o_mem_alloc(conf->num_routes * sizeof(*dist));
    row = h2o_mem_alloc(rowlen * sizeof(*row));
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

int pgw_key_allows_model(const pgw_key_t *key, const char *model, size_t model_len)
{
    if (key->num_models == 0)
        return 1;
    for (size_t i = 0; i != key->num_models; ++i)
        if (pgw_wildcard_match(key->models[i], model, model_len))
            return 1;
    return 0;
}

void pgw_poe_claude_name(const char *model, char *buf, size_t bufsz)
{
    size_t len = strlen(model), j = 0;
    if (bufsz == 0)
        return;
    if (len > 9 && model[len - 9] == '-' && strspn(model + len - 8, "0123456789") == 8)
        len -= 9;
    for (size_t i = 0; i != len && j + 1 < bufsz; ++i) {
        int between_digits =
            model[i] == '-' && i > 0 && i + 1 < len && isdigit((unsigned char)model[i - 1]) && isdigit((unsigned char)model[i + 1]);
        buf[j++] = between_digits ? '.' : (char)tolower((unsigned char)model[i]);
    }
    buf[j] = '\0';
}

int pgw_route_caching_hint(const pgw_route_t *route, char *buf, size_t bufsz)
{
    char name[256];
    if (route->kind != PGW_ROUTE_OPENAI || strncasecmp(route->upstream_model, "claude", 6) != 0 ||
        strchr(route->upstream_model, '*') != NULL)
        return 0;
    pgw_poe_claude_name(route->upstream_model, name, sizeof(name));
    snprintf(buf, bufsz, "anthropic/%s", name);
    return 1;
}

const pgw_fallbacks_t *pgw_config_find_fallbacks(const pgw_config_t *conf, int context_window, const char *model, size_t model_len,
                                                 const pgw_route_t *route)
{
    const pgw_fallbacks_t *by_route = NULL;
    for (size_t i = 0; i != conf->num_fallbacks; ++i) {
        const pgw_fallbacks_t *fb = conf->fallbacks + i;
        if (fb->context_window != context_window)
            continue;
        if (strlen(fb->from) == model_len && memcmp(fb->from, model, model_len) == 0)
            return fb;
        if (by_route == NULL && route != NULL && strcmp(fb->from, route->model_name) == 0)
            by_route = fb;
    }
    return by_route;
}
