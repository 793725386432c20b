/* poe-gateway: MIT licence. Thinking and effort for a Poe bot (docs/mapping.md#thinking-and-effort).
 *
 * Poe takes reasoning controls as top-level fields of chat/completions, and only those a bot declares in the catalog
 * (src/upstream/catalog.c reads them into pgw_knob_t): a field it does not declare is a 400. So the request's `thinking` and
 * `output_config.effort` become at most one of the bot's budget knob (thinking_budget, an integer) or effort knob
 * (reasoning_effort or output_effort, an enum), plus enable_thinking (a boolean) when declared. An effort is the nearest
 * value the bot declares; a budget is clamped to the knob's range and below max_tokens. The rules are LiteLLM's where
 * it has them (the budget buckets) and the gateway's own where it has none (the budget for an effort).
 */
#include <limits.h>
#include <string.h>
#include "common/json.h"
#include "translate/translate_knobs.h"

static const char *const efforts[] = {"minimal", "low", "medium", "high", "xhigh", "max"};
#define NUM_EFFORTS (sizeof(efforts) / sizeof(efforts[0]))

static int is(h2o_iovec_t v, const char *lit)
{
    size_t len = strlen(lit);
    return v.base != NULL && v.len == len && memcmp(v.base, lit, len) == 0;
}

/* The rank of an effort in efforts[], or -1 for none or one unknown. */
static int effort_rank(h2o_iovec_t effort)
{
    for (size_t i = 0; i != NUM_EFFORTS; ++i)
        if (is(effort, efforts[i]))
            return (int)i;
    return -1;
}

/* The effort a token budget stands for: LiteLLM's thresholds */
static int bucket(long long n)
{
    return n >= 16384 ? 5 : n >= 8192 ? 4 : n >= 4096 ? 3 : n >= 2048 ? 2 : n >= 1024 ? 1 : 0;
}

/* The bot's knob called `name`, when it has the type the mapping needs. */
static const pgw_knob_t *find_knob(const pgw_bot_t *bot, const char *name, pgw_knob_type_t type)
{
    for (size_t i = 0; i != bot->num_knobs; ++i)
        if (bot->knobs[i].type == type && bot->knobs[i].name != NULL && strcmp(bot->knobs[i].name, name) == 0)
            return &bot->knobs[i];
    return NULL;
}

/* The declared value nearest to efforts[rank]: itself, else stepping down (never below "low"), else up; NULL if none. */
static const char *clamp_effort(const pgw_knob_t *k, int rank)
{
    for (int step = 0; step != 2 * (int)NUM_EFFORTS; ++step) {
        int r = step < (int)NUM_EFFORTS ? rank - step : rank + step - (int)NUM_EFFORTS + 1;
        if (r < 0 || r >= (int)NUM_EFFORTS || (step != 0 && step < (int)NUM_EFFORTS && r == 0))
            continue;
        for (size_t i = 0; i != k->num_values; ++i)
            if (strcmp(k->values[i], efforts[r]) == 0)
                return k->values[i];
    }
    return NULL;
}

/* budget(E), a gateway choice (docs/mapping.md#thinking-and-effort) */
static long long effort_budget(const pgw_knob_t *k, int rank)
{
    static const long long fixed[] = {1024, 2048, 8192, 16384};
    if (rank < 4)
        return fixed[rank];
    return k->max != LLONG_MAX ? k->max : 32768;
}

/* `,"name":`; names and values come from the catalog, which yajl read: valid UTF-8 */
static void append_name(h2o_buffer_t **out, const char *name)
{
    pgw_buf_append_lit(out, ",\"");
    pgw_json_append_escaped(out, name, strlen(name));
    pgw_buf_append_lit(out, "\":");
}

static void append_effort(h2o_buffer_t **out, const pgw_extra_body_t *pins, const pgw_knob_t *effort, int rank)
{
    const char *value;
    if (pgw_extra_body_has(pins, effort->name) || (value = clamp_effort(effort, rank)) == NULL)
        return;
    append_name(out, effort->name);
    pgw_buf_append_lit(out, "\"");
    pgw_json_append_escaped(out, value, strlen(value));
    pgw_buf_append_lit(out, "\"");
}

static void append_budget(h2o_buffer_t **out, const pgw_extra_body_t *pins, const pgw_knob_t *budget, long long v,
                          long long max_tokens)
{
    if (pgw_extra_body_has(pins, budget->name))
        return;
    if (v > budget->max)
        v = budget->max;
    if (max_tokens > 0 && v > max_tokens - 1)
        v = max_tokens - 1; /* the budget is part of max_tokens */
    if (v < 0 || v < budget->min)
        return; /* max_tokens leaves no room for the model's least budget */
    append_name(out, budget->name);
    pgw_json_append_int(out, v);
}

void pgw_knobs_append(h2o_buffer_t **out, const pgw_bot_t *bot, const pgw_thinking_t *thinking, const pgw_extra_body_t *pins)
{
    int adaptive = is(thinking->type, "adaptive"), enabled = is(thinking->type, "enabled");
    int rank = effort_rank(thinking->effort);

    /* no catalog entry: no knob (an undeclared one is a 400); thinking absent, disabled or unknown: none at all, since an
     * effort with thinking off is a contradiction some models resolve by thinking */
    if (bot == NULL || !(adaptive || enabled))
        return;
    const pgw_knob_t *enable = find_knob(bot, "enable_thinking", PGW_KNOB_BOOLEAN);
    const pgw_knob_t *budget = find_knob(bot, "thinking_budget", PGW_KNOB_INTEGER);
    const pgw_knob_t *effort = find_knob(bot, "reasoning_effort", PGW_KNOB_ENUM);
    if (effort == NULL)
        effort = find_knob(bot, "output_effort", PGW_KNOB_ENUM);

    if (enable != NULL && !pgw_extra_body_has(pins, enable->name))
        pgw_buf_append_lit(out, ",\"enable_thinking\":true");
    /* with both kinds declared, a client's token budget goes to the budget knob and a client's effort to the effort knob */
    if (enabled) {
        if (!thinking->has_budget)
            return; /* Anthropic requires budget_tokens; nothing to map */
        if (budget != NULL)
            append_budget(out, pins, budget, thinking->budget, thinking->max_tokens);
        else if (effort != NULL)
            append_effort(out, pins, effort, bucket(thinking->budget));
    } else if (rank >= 0) {
        if (effort != NULL)
            append_effort(out, pins, effort, rank);
        else if (budget != NULL)
            append_budget(out, pins, budget, effort_budget(budget, rank), thinking->max_tokens);
    } else if (budget != NULL) {
        /* adaptive without an effort: budget("medium"); an effort knob is left at the model's default */
        append_budget(out, pins, budget, effort_budget(budget, 2), thinking->max_tokens);
    }
}

int pgw_knobs_web_search(const pgw_bot_t *bot, const pgw_extra_body_t *pins)
{
    return pgw_extra_body_has(pins, "web_search") || (bot != NULL && find_knob(bot, "web_search", PGW_KNOB_BOOLEAN) != NULL);
}
