/* poe-gateway: MIT licence. Unit tests for src/translate/translate_knobs.c: thinking and effort for a Poe bot
 * (docs/mapping.md#thinking-and-effort). What a whole request's thinking fields become is tested in translate_request.c. */
#include <limits.h>
#include <h2o/socket.h>
#include "../../../../src/translate/translate_knobs.c"
#include "../../test.h"

static char *all_efforts[] = {"minimal", "low", "medium", "high", "xhigh", "max"};
static char *gpt_efforts[] = {"minimal", "low", "medium", "high"};
static char *sparse_efforts[] = {"medium", "max"};
static char *odd_efforts[] = {"none", "minimal"};
static pgw_knob_t budget_knobs[] = {{"thinking_budget", PGW_KNOB_INTEGER, 0, 31999}, {"web_search", PGW_KNOB_BOOLEAN}};
static pgw_knob_t effort_knobs[] = {{"reasoning_effort", PGW_KNOB_ENUM, 0, 0, gpt_efforts, 4}};
static pgw_knob_t both_knobs[] = {{"enable_thinking", PGW_KNOB_BOOLEAN},
                                  {"thinking_budget", PGW_KNOB_INTEGER, 1024, LLONG_MAX},
                                  {"output_effort", PGW_KNOB_ENUM, 0, 0, sparse_efforts, 2}};
/* knobs with the right names and the wrong types are not knobs to set */
static pgw_knob_t mistyped_knobs[] = {{"thinking_budget", PGW_KNOB_ENUM, 0, 0, gpt_efforts, 4},
                                      {"reasoning_effort", PGW_KNOB_INTEGER, 0, 10},
                                      {"enable_thinking", PGW_KNOB_OTHER}};
static pgw_bot_t budget_bot = {"budget", 0, budget_knobs, 2};
static pgw_bot_t effort_bot = {"effort", 0, effort_knobs, 1};
static pgw_bot_t both_bot = {"both", 0, both_knobs, 3};
static pgw_bot_t mistyped_bot = {"mistyped", 0, mistyped_knobs, 3};

/* The fields appended for thinking of type `type` (NULL: absent) with `budget` (< 0: none), `effort` and `max_tokens`. */
static const char *knobs(const pgw_bot_t *bot, const char *type, long long budget, const char *effort, long long max_tokens,
                         const char *pins)
{
    static char result[256];
    pgw_thinking_t t = {type != NULL ? h2o_iovec_init(type, strlen(type)) : h2o_iovec_init(NULL, 0), budget, budget >= 0,
                        effort != NULL ? h2o_iovec_init(effort, strlen(effort)) : h2o_iovec_init(NULL, 0), max_tokens};
    pgw_extra_body_t *x = pins != NULL ? pgw_extra_body_parse(pins, strlen(pins)) : NULL;
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_knobs_append(&out, bot, &t, x);
    snprintf(result, sizeof(result), "%.*s", (int)out->size, out->bytes);
    h2o_buffer_dispose(&out);
    free(x);
    return result;
}

static void test_append(void)
{
    /* enabled: the budget to a budget knob, clamped to its maximum and below max_tokens */
    is_str(knobs(&budget_bot, "enabled", 5000, NULL, 0, NULL), ",\"thinking_budget\":5000");
    is_str(knobs(&budget_bot, "enabled", 50000, NULL, 0, NULL), ",\"thinking_budget\":31999");
    is_str(knobs(&budget_bot, "enabled", 5000, NULL, 4000, NULL), ",\"thinking_budget\":3999");
    is_str(knobs(&budget_bot, "enabled", 5000, NULL, 1, NULL), ",\"thinking_budget\":0");
    /* below the knob's least: not sent; enable_thinking still is */
    is_str(knobs(&both_bot, "enabled", 5000, NULL, 500, NULL), ",\"enable_thinking\":true");
    /* enabled without a budget: nothing to map */
    is_str(knobs(&budget_bot, "enabled", -1, NULL, 0, NULL), "");
    /* enabled on an effort knob: the budget's bucket, clamped to the declared values */
    is_str(knobs(&effort_bot, "enabled", 31999, NULL, 0, NULL), ",\"reasoning_effort\":\"high\"");
    is_str(knobs(&effort_bot, "enabled", 500, NULL, 0, NULL), ",\"reasoning_effort\":\"minimal\"");
    /* adaptive with an effort: the effort knob first, else the effort's budget */
    is_str(knobs(&effort_bot, "adaptive", -1, "medium", 0, NULL), ",\"reasoning_effort\":\"medium\"");
    is_str(knobs(&budget_bot, "adaptive", -1, "low", 0, NULL), ",\"thinking_budget\":2048");
    is_str(knobs(&budget_bot, "adaptive", -1, "max", 0, NULL), ",\"thinking_budget\":31999");
    is_str(knobs(&both_bot, "adaptive", -1, "high", 0, NULL), ",\"enable_thinking\":true,\"output_effort\":\"medium\"");
    /* both kinds declared: a token budget goes to the budget knob */
    is_str(knobs(&both_bot, "enabled", 3000, NULL, 0, NULL), ",\"enable_thinking\":true,\"thinking_budget\":3000");
    /* adaptive without an effort (or with one unknown): budget(medium), or the model's default effort */
    is_str(knobs(&budget_bot, "adaptive", -1, NULL, 0, NULL), ",\"thinking_budget\":8192");
    is_str(knobs(&budget_bot, "adaptive", -1, "extreme", 0, NULL), ",\"thinking_budget\":8192");
    is_str(knobs(&effort_bot, "adaptive", -1, NULL, 0, NULL), "");
    /* thinking absent, disabled or unknown: nothing, even with an effort */
    is_str(knobs(&effort_bot, NULL, -1, "high", 0, NULL), "");
    is_str(knobs(&effort_bot, "disabled", 5000, "high", 0, NULL), "");
    is_str(knobs(&both_bot, "Enabled", 5000, NULL, 0, NULL), "");
    /* no catalog entry, or knobs of the wrong types: nothing */
    is_str(knobs(NULL, "enabled", 5000, "high", 0, NULL), "");
    is_str(knobs(&mistyped_bot, "enabled", 5000, "high", 0, NULL), "");
    is_str(knobs(&mistyped_bot, "adaptive", -1, "high", 0, NULL), "");
    /* a knob the route pins is left to the pin */
    is_str(knobs(&both_bot, "enabled", 3000, NULL, 0, "\"thinking_budget\":1"), ",\"enable_thinking\":true");
    is_str(knobs(&both_bot, "adaptive", -1, "max", 0, "\"enable_thinking\":false,\"output_effort\":\"low\""), "");
    is_str(knobs(&budget_bot, "enabled", 3000, NULL, 0, "\"reasoning_effort\":\"low\""), ",\"thinking_budget\":3000");
}

static void test_rules(void)
{
    /* bucket(N): LiteLLM's thresholds */
    is_int(bucket(0), 0);
    is_int(bucket(1023), 0);
    is_int(bucket(1024), 1);
    is_int(bucket(2048), 2);
    is_int(bucket(4095), 2);
    is_int(bucket(4096), 3);
    is_int(bucket(8192), 4);
    is_int(bucket(16383), 4);
    is_int(bucket(16384), 5);
    is_int(bucket(LLONG_MAX), 5);

    /* budget(E) */
    pgw_knob_t open_budget = {"thinking_budget", PGW_KNOB_INTEGER, 0, LLONG_MAX};
    is_int(effort_budget(&budget_knobs[0], 0), 1024);
    is_int(effort_budget(&budget_knobs[0], 1), 2048);
    is_int(effort_budget(&budget_knobs[0], 2), 8192);
    is_int(effort_budget(&budget_knobs[0], 3), 16384);
    is_int(effort_budget(&budget_knobs[0], 4), 31999);
    is_int(effort_budget(&budget_knobs[0], 5), 31999);
    is_int(effort_budget(&open_budget, 5), 32768);

    /* clamping an effort: itself, else stepping down (never to minimal), else up */
    pgw_knob_t all = {"reasoning_effort", PGW_KNOB_ENUM, 0, 0, all_efforts, 6};
    pgw_knob_t sparse = {"output_effort", PGW_KNOB_ENUM, 0, 0, sparse_efforts, 2};
    pgw_knob_t odd = {"reasoning_effort", PGW_KNOB_ENUM, 0, 0, odd_efforts, 2};
    pgw_knob_t none = {"reasoning_effort", PGW_KNOB_ENUM, 0, 0, NULL, 0};
    for (int r = 0; r != 6; ++r)
        is_str(clamp_effort(&all, r), all_efforts[r]);
    is_str(clamp_effort(&sparse, 4), "medium"); /* xhigh: down to medium */
    is_str(clamp_effort(&sparse, 5), "max");
    is_str(clamp_effort(&sparse, 1), "medium"); /* low: nothing below but minimal, so up */
    is_str(clamp_effort(&sparse, 0), "medium");
    ok(clamp_effort(&odd, 3) == NULL);        /* high: never down to minimal, and nothing above */
    is_str(clamp_effort(&odd, 0), "minimal"); /* unless minimal is what was asked */
    ok(clamp_effort(&none, 3) == NULL);

    /* efforts are compared whole */
    is_int(effort_rank(h2o_iovec_init(H2O_STRLIT("high"))), 3);
    is_int(effort_rank(h2o_iovec_init(H2O_STRLIT("hig"))), -1);
    is_int(effort_rank(h2o_iovec_init(H2O_STRLIT("highest"))), -1);
    is_int(effort_rank(h2o_iovec_init(NULL, 0)), -1);
}

void test_src__translate_knobs_c(void)
{
    subtest("append", test_append);
    subtest("rules", test_rules);
}
