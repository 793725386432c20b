/* poe-gateway: MIT licence. Budgets (src/ledger/budget.h): checked before a request goes upstream, from totals held in
 * memory (src/ledger/tally.c), so a request that is already in flight when a budget runs out finishes, and the next one
 * is refused (docs/ledger.md#budgets). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "ledger/budget.h"

/* Weighs one limit; keeps in `v` the one that decides: a spent one first (the monthly one when both are), else the one
 * with the smallest share left past the warning share. */
static void weigh(pgw_store_t *s, const pgw_config_t *conf, const pgw_budget_t *b, pgw_spender_t kind, const char *name,
                  const char *who, const char *what, int64_t now_ms, pgw_budget_verdict_t *v, double *best_left)
{
    for (int monthly = 0; monthly != 2; ++monthly) {
        double limit = monthly ? b->monthly : b->daily;
        if (!(limit > 0))
            continue;
        double spent = s->ops->spent(s, kind, name, monthly, now_ms);
        if (b->in_points)
            spent *= conf->points_per_usd;
        double left = 1 - spent / limit;
        int over = spent >= limit;
        if (v->over && (!over || v->monthly))
            continue;
        if (!over && (left > 1 - PGW_BUDGET_WARN_AT || left >= *best_left))
            continue;
        *best_left = left;
        v->over = over;
        v->warn = !over;
        snprintf(v->who, sizeof(v->who), "%s", who);
        v->what = what;
        v->monthly = monthly;
        v->in_points = b->in_points;
        v->limit = limit;
        v->spent = spent;
        v->resets_at_ms = pgw_ledger_period_end(now_ms, monthly);
    }
}

void pgw_budget_check(pgw_store_t *s, const pgw_config_t *conf, const char *caller, const pgw_key_t *key, const char *upstream,
                      int64_t now_ms, pgw_budget_verdict_t *v)
{
    char who[192];
    double best_left = 2;
    memset(v, 0, sizeof(*v));
    if (s == NULL)
        return;
    const pgw_budget_t *mine = NULL;
    const char *what = NULL;
    if (key != NULL && (key->budget.daily > 0 || key->budget.monthly > 0)) {
        mine = &key->budget;
        what = "gateway.keys[].budget";
        snprintf(who, sizeof(who), "key %s", caller);
    } else {
        for (size_t i = 0; i != conf->num_budgets; ++i) {
            if (strcmp(conf->budgets[i].name, caller) == 0) {
                mine = &conf->budgets[i].budget;
                what = "gateway.budgets";
                snprintf(who, sizeof(who), "%s %s", key != NULL || strcmp(caller, "master") == 0 ? "key" : "login", caller);
                break;
            }
        }
    }
    if (mine != NULL)
        weigh(s, conf, mine, PGW_SPENDER_CALLER, caller, who, what, now_ms, v, &best_left);
    if (conf->team_budget.daily > 0 || conf->team_budget.monthly > 0) {
        snprintf(who, sizeof(who), "the team (upstream key %s)", upstream);
        weigh(s, conf, &conf->team_budget, PGW_SPENDER_UPSTREAM, upstream, who, "gateway.budget", now_ms, v, &best_left);
    }
}

static void amount(char *buf, size_t bufsz, double x, int in_points)
{
    if (in_points)
        snprintf(buf, bufsz, "%.0f points", x);
    else
        snprintf(buf, bufsz, "%.2f USD", x);
}

int pgw_budget_message(const pgw_budget_verdict_t *v, int64_t now_ms, char *buf, size_t bufsz)
{
    char limit[48], spent[48], at[40];
    time_t t = (time_t)(v->resets_at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, sizeof(at), "%Y-%m-%d %H:%M UTC", &tm);
    amount(limit, sizeof(limit), v->limit, v->in_points);
    amount(spent, sizeof(spent), v->spent, v->in_points);
    int64_t mins = (v->resets_at_ms - now_ms + 59999) / 60000;
    return snprintf(buf, bufsz,
                    "budget exceeded: %s has spent %s of its %s budget of %s; it resets at %s (in %lld h %02lld min). Ask the "
                    "gateway's admin to raise %s if this work must go on now.",
                    v->who, spent, v->monthly ? "monthly" : "daily", limit, at, (long long)(mins / 60), (long long)(mins % 60),
                    v->what);
}

int pgw_budget_remaining(const pgw_budget_verdict_t *v, char *buf, size_t bufsz)
{
    char at[32];
    time_t t = (time_t)(v->resets_at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    double left = v->limit - v->spent;
    if (left < 0)
        left = 0;
    if (v->in_points)
        return snprintf(buf, bufsz, "%.0f of %.0f points %s (%s), resets %s", left, v->limit, v->monthly ? "monthly" : "daily",
                        v->who, at);
    return snprintf(buf, bufsz, "%.2f of %.2f USD %s (%s), resets %s", left, v->limit, v->monthly ? "monthly" : "daily", v->who,
                    at);
}
