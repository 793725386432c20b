/* poe-gateway: MIT licence. The configuration of cost control: gateway.ledger, and the budgets (gateway.budget,
 * gateway.budgets, gateway.keys[].budget). What they mean is docs/ledger.md's; this file only reads them. */
#include "config/config_loader.h"

int pgw_loader_on_budget(pgw_loader_t *l, yaml_node_t *node, const char *what, pgw_budget_t *out)
{
    pgw_loader_pair_t *pairs;
    size_t num;
    char sub[128];

    if (pgw_loader_expect_mapping(l, node, what) != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    *out = (pgw_budget_t){0};
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *k = pairs[i].key, *v = pairs[i].value;
        if (pgw_yaml_is_null(v))
            continue;
        if (pgw_yaml_key_is(k, "daily")) {
            snprintf(sub, sizeof(sub), "%s.daily", what);
            if (pgw_loader_number(l, v, sub, 0, &out->daily) != 0)
                return -1;
        } else if (pgw_yaml_key_is(k, "monthly")) {
            snprintf(sub, sizeof(sub), "%s.monthly", what);
            if (pgw_loader_number(l, v, sub, 0, &out->monthly) != 0)
                return -1;
        } else if (pgw_yaml_key_is(k, "unit")) {
            snprintf(sub, sizeof(sub), "%s.unit", what);
            const char *unit = pgw_loader_scalar(l, v, sub);
            if (unit == NULL)
                return -1;
            if (strcmp(unit, "usd") == 0 || strcmp(unit, "USD") == 0)
                out->in_points = 0;
            else if (strcmp(unit, "points") == 0)
                out->in_points = 1;
            else
                return pgw_loader_error(l, v, "%s must be usd or points", sub);
        } else {
            pgw_loader_warn_unknown(l, k, what);
        }
    }
    return 0;
}

int pgw_loader_on_budgets(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_config_t *conf = l->conf;
    pgw_loader_pair_t *pairs;
    size_t num;

    if (pgw_loader_expect_mapping(l, node, "gateway.budgets") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        const char *name = pgw_loader_scalar(l, pairs[i].key, "gateway.budgets name");
        if (name == NULL)
            return -1;
        if (*name == '\0')
            return pgw_loader_error(l, pairs[i].key, "gateway.budgets names a caller: a tailnet login or a key's name");
        pgw_budget_t b;
        if (pgw_loader_on_budget(l, pairs[i].value, "gateway.budgets entry", &b) != 0)
            return -1;
        conf->budgets = xrealloc(conf->budgets, (conf->num_budgets + 1) * sizeof(conf->budgets[0]));
        conf->budgets[conf->num_budgets++] = (pgw_named_budget_t){xstrdup(name), b};
    }
    return 0;
}

int pgw_loader_on_ledger(pgw_loader_t *l, yaml_node_t *node)
{
    pgw_config_t *conf = l->conf;
    pgw_loader_pair_t *pairs;
    size_t num;
    long long n;

    if (pgw_loader_expect_mapping(l, node, "gateway.ledger") != 0 || pgw_loader_pairs(l, node, &pairs, &num) != 0)
        return -1;
    for (size_t i = 0; i != num; ++i) {
        yaml_node_t *k = pairs[i].key, *v = pairs[i].value;
        if (pgw_yaml_is_null(v))
            continue;
        if (pgw_yaml_key_is(k, "enabled")) {
            if (pgw_loader_bool(l, v, "gateway.ledger.enabled", &conf->ledger_enabled) != 0)
                return -1;
        } else if (pgw_yaml_key_is(k, "path")) {
            if (pgw_loader_string(l, v, "gateway.ledger.path", &conf->ledger_path) != 0)
                return -1;
        } else if (pgw_yaml_key_is(k, "retention_days")) {
            if (pgw_loader_int(l, v, "gateway.ledger.retention_days", 1, 36600, &n) != 0)
                return -1;
            conf->ledger_retention_days = (unsigned)n;
        } else if (pgw_yaml_key_is(k, "max_bytes")) {
            if (pgw_loader_size(l, v, "gateway.ledger.max_bytes", &conf->ledger_max_bytes) != 0)
                return -1;
            if (conf->ledger_max_bytes < 1024 * 1024)
                return pgw_loader_error(l, v, "gateway.ledger.max_bytes must be at least 1M");
        } else if (pgw_yaml_key_is(k, "reconcile_interval")) {
            if (pgw_loader_seconds(l, v, "gateway.ledger.reconcile_interval", 1, &conf->reconcile_interval) != 0)
                return -1;
        } else {
            pgw_loader_warn_unknown(l, k, "gateway.ledger");
        }
    }
    return 0;
}
