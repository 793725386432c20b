/* poe-gateway: MIT licence. LiteLLM's fallback settings: `fallbacks` and `context_window_fallbacks` (in router_settings,
 * or in litellm_settings, where LiteLLM accepts them too), `allowed_fails` and `cooldown_time`; and litellm_settings.
 *
 * A fallback list is LiteLLM's shape, a sequence of single-key mappings, `[{"claude-sonnet-4-5": ["gpt-5"]}]`: the key is
 * the model name whose requests fall back, the value the model names tried next, in order. Names are kept with their
 * positions while the file is read, because model_list may come after them; pgw_loader_finish_fallbacks then resolves
 * every name to the route that serves it, and a name no route serves is an error at that name's line and column
 * (docs/config.md#fallbacks).
 */
#include <string.h>
#include <yaml.h>
#include "config/config_loader.h"
#include "config/route_match.h"

#define MODULE_NAME "config"
#define MAX_TARGETS 16 /* per model: more is a typo, and every one may cost a request's worth of waiting */

static int read_name(pgw_loader_t *l, yaml_node_t *node, const char *what, char **name, unsigned *line, unsigned *column)
{
    const char *s = pgw_loader_scalar(l, node, what);
    if (s == NULL)
        return -1;
    if (*s == '\0')
        return pgw_loader_error(l, node, "%s must be a model name, not empty", what);
    *name = xstrdup(s);
    *line = (unsigned)node->start_mark.line + 1;
    *column = (unsigned)node->start_mark.column + 1;
    return 0;
}

/* One `{from: [to, ...]}` element. */
static int on_entry(pgw_loader_t *l, yaml_node_t *entry, const char *what, int context_window)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (entry->type != YAML_MAPPING_NODE)
        return pgw_loader_error(l, entry,
                                "%s: each entry must be a mapping of one model name to a list of model names, "
                                "e.g. {\"claude-sonnet-4-5\": [\"gpt-5\"]}",
                                what);
    if (pgw_loader_pairs(l, entry, &pairs, &num) != 0)
        return -1;
    if (num != 1)
        return pgw_loader_error(l, entry, "%s: each entry must map exactly one model name (write one entry per model)", what);
    yaml_node_t *targets = pairs[0].value;
    if (targets->type == YAML_SCALAR_NODE && !pgw_yaml_is_null(targets))
        return pgw_loader_error(l, targets, "%s: the fallbacks of a model are a list of model names, e.g. [\"gpt-5\"]", what);
    if (targets->type != YAML_SEQUENCE_NODE)
        return pgw_loader_error(l, targets, "%s: the fallbacks of a model must be a non-empty list of model names", what);
    size_t count = (size_t)(targets->data.sequence.items.top - targets->data.sequence.items.start);
    if (count == 0)
        return pgw_loader_error(l, targets, "%s: the fallbacks of a model must be a non-empty list of model names", what);
    if (count > MAX_TARGETS)
        return pgw_loader_error(l, targets, "%s: at most %d fallbacks per model", what, MAX_TARGETS);

    pgw_config_t *conf = l->conf;
    conf->fallbacks = xrealloc(conf->fallbacks, sizeof(*conf->fallbacks) * (conf->num_fallbacks + 1));
    pgw_fallbacks_t *fb = conf->fallbacks + conf->num_fallbacks++;
    memset(fb, 0, sizeof(*fb));
    fb->context_window = context_window;
    if (read_name(l, pairs[0].key, what, &fb->from, &fb->line, &fb->column) != 0)
        return -1;
    fb->to = xrealloc(NULL, sizeof(*fb->to) * count);
    for (yaml_node_item_t *item = targets->data.sequence.items.start; item != targets->data.sequence.items.top; ++item) {
        pgw_fallback_target_t *t = fb->to + fb->num_to;
        memset(t, 0, sizeof(*t));
        if (read_name(l, pgw_loader_node(l, *item), what, &t->name, &t->line, &t->column) != 0)
            return -1;
        ++fb->num_to;
    }
    return 0;
}

/* A whole `fallbacks` or `context_window_fallbacks` value. */
static int on_list(pgw_loader_t *l, yaml_node_t *node, const char *what, int context_window)
{
    if (pgw_yaml_is_null(node))
        return 0;
    if (node->type != YAML_SEQUENCE_NODE)
        return pgw_loader_error(l, node, "%s must be a list of {model: [fallback, ...]} entries", what);
    for (yaml_node_item_t *item = node->data.sequence.items.start; item != node->data.sequence.items.top; ++item)
        if (on_entry(l, pgw_loader_node(l, *item), what, context_window) != 0)
            return -1;
    return 0;
}

int pgw_loader_on_fallback_key(pgw_loader_t *l, const char *section, yaml_node_t *key, yaml_node_t *value)
{
    char what[96];
    long long n;

    if (pgw_yaml_key_is(key, "fallbacks") || pgw_yaml_key_is(key, "context_window_fallbacks")) {
        int context_window = pgw_yaml_key_is(key, "context_window_fallbacks");
        snprintf(what, sizeof(what), "%s.%s", section, context_window ? "context_window_fallbacks" : "fallbacks");
        return on_list(l, value, what, context_window);
    }
    if (strcmp(section, "router_settings") != 0)
        return 1;
    if (pgw_yaml_key_is(key, "allowed_fails")) {
        if (pgw_yaml_is_null(value))
            return 0;
        if (pgw_loader_int(l, value, "router_settings.allowed_fails", 0, 1000000, &n) != 0)
            return -1;
        l->conf->allowed_fails = (int)n;
        return 0;
    }
    if (pgw_yaml_key_is(key, "cooldown_time")) {
        if (pgw_yaml_is_null(value))
            return 0;
        return pgw_loader_seconds(l, value, "router_settings.cooldown_time", 1, &l->conf->cooldown_time);
    }
    return 1;
}

int pgw_loader_on_litellm_settings(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_yaml_is_null(node))
        return 0;
    if (pgw_loader_expect_mapping(l, node, "litellm_settings") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        int ret = pgw_loader_on_fallback_key(l, "litellm_settings", pairs[i].key, pairs[i].value);
        if (ret < 0)
            return -1;
        if (ret > 0)
            pgw_loader_warn_unknown(l, pairs[i].key, "litellm_settings");
    }
    return 0;
}

static yaml_mark_t mark_at(unsigned line, unsigned column)
{
    yaml_mark_t mark = {0, line - 1, column - 1};
    return mark;
}

/* The route that serves `name`, or -1 after the error. */
static int resolve(pgw_loader_t *l, const char *name, unsigned line, unsigned column, const char *role, size_t *route)
{
    const pgw_route_t *r = pgw_config_find_route(l->conf, name, strlen(name));
    if (r == NULL)
        return pgw_loader_error_at_mark(l, mark_at(line, column),
                                        "%s '%s' is not served by any model_list entry (fallbacks name model_name values)", role,
                                        name);
    *route = (size_t)(r - l->conf->routes);
    return 0;
}

int pgw_loader_finish_fallbacks(pgw_loader_t *l)
{
    pgw_config_t *conf = l->conf;

    for (size_t i = 0; i != conf->num_fallbacks; ++i) {
        pgw_fallbacks_t *fb = conf->fallbacks + i;
        size_t from;
        if (resolve(l, fb->from, fb->line, fb->column, "fallbacks: model", &from) != 0)
            return -1;
        for (size_t j = 0; j != i; ++j)
            if (conf->fallbacks[j].context_window == fb->context_window && strcmp(conf->fallbacks[j].from, fb->from) == 0)
                return pgw_loader_error_at_mark(l, mark_at(fb->line, fb->column),
                                                "%s: model '%s' already has a list (merge the two)",
                                                fb->context_window ? "context_window_fallbacks" : "fallbacks", fb->from);
        for (size_t k = 0; k != fb->num_to; ++k) {
            pgw_fallback_target_t *t = fb->to + k;
            if (resolve(l, t->name, t->line, t->column, "fallbacks: target", &t->route) != 0)
                return -1;
            if (strcmp(t->name, fb->from) == 0)
                return pgw_loader_error_at_mark(l, mark_at(t->line, t->column), "fallbacks: model '%s' falls back to itself",
                                                t->name);
        }
    }
    return 0;
}

void pgw_config_dispose_fallbacks(pgw_config_t *conf)
{
    for (size_t i = 0; i != conf->num_fallbacks; ++i) {
        pgw_fallbacks_t *fb = conf->fallbacks + i;
        free(fb->from);
        for (size_t k = 0; k != fb->num_to; ++k)
            free(fb->to[k].name);
        free(fb->to);
    }
    free(conf->fallbacks);
    conf->fallbacks = NULL;
    conf->num_fallbacks = 0;
}
