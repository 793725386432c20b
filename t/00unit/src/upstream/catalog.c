/* poe-gateway: MIT licence. Unit tests for src/upstream/catalog.c. */
#include <stdio.h>
#include <stdlib.h>
#include "../../../../src/upstream/catalog.c"
#include "../../test.h"

/* the knob called `name` as the catalog read it, or NULL */
static const pgw_knob_t *knob(const pgw_bot_t *bot, const char *name)
{
    for (size_t i = 0; bot != NULL && i != bot->num_knobs; ++i)
        if (strcmp(bot->knobs[i].name, name) == 0)
            return bot->knobs + i;
    return NULL;
}

void test_src__catalog_c(void)
{
    size_t len;
    char err[256], *json = read_whole_file("t/assets/poe-catalog.json", &len);
    ok(json != NULL);
    if (json == NULL)
        return;
    pgw_catalog_t *c = pgw_catalog_parse(json, len, err, sizeof(err));
    free(json);
    ok(c != NULL);
    if (c == NULL)
        return;
    is_int(pgw_catalog_size(c), 4);
    /* every bot in the document's order, as doctor walks them for a retired model's family */
    is_str(pgw_catalog_bot(c, 0)->id, "claude-sonnet-4.5");
    ok(pgw_catalog_bot(c, 0) == pgw_catalog_find(c, H2O_STRLIT("claude-sonnet-4.5")));
    for (size_t i = 0; i != pgw_catalog_size(c); ++i)
        ok(pgw_catalog_find(c, pgw_catalog_bot(c, i)->id, strlen(pgw_catalog_bot(c, i)->id)) == pgw_catalog_bot(c, i));

    const pgw_bot_t *sonnet = pgw_catalog_find(c, H2O_STRLIT("Claude-Sonnet-4.5"));
    ok(sonnet != NULL);
    is_str(sonnet->id, "claude-sonnet-4.5");
    is_int(sonnet->max_output_tokens, 32768);
    is_int(sonnet->context_length, 200000);
    is_str(pgw_catalog_display_name(c, sonnet), "Claude-Sonnet-4.5");
    const pgw_knob_t *tb = knob(sonnet, "thinking_budget");
    ok(tb != NULL && tb->type == PGW_KNOB_INTEGER && tb->min == 0 && tb->max == 31999);
    const pgw_knob_t *ws = knob(sonnet, "web_search");
    ok(ws != NULL && ws->type == PGW_KNOB_BOOLEAN);
    ok(knob(sonnet, "reasoning_effort") == NULL);

    const pgw_bot_t *gpt = pgw_catalog_find(c, H2O_STRLIT("GPT-5"));
    ok(gpt != NULL && gpt == pgw_catalog_find(c, H2O_STRLIT("gpt-5")));
    const pgw_knob_t *re = knob(gpt, "reasoning_effort");
    ok(re != NULL && re->type == PGW_KNOB_ENUM && re->num_values == 4);
    if (re != NULL && re->num_values == 4) {
        is_str(re->values[0], "minimal");
        is_str(re->values[3], "high");
    }

    const pgw_bot_t *grok = pgw_catalog_find(c, H2O_STRLIT("grok-4"));
    ok(grok != NULL && grok->max_output_tokens == 0 && grok->num_knobs == 0);
    is_int(grok->context_length, 256000);
    const pgw_bot_t *odd = pgw_catalog_find(c, H2O_STRLIT("odd"));
    ok(odd != NULL && odd->num_knobs == 1 && odd->knobs[0].type == PGW_KNOB_OTHER);
    /* a display name that is more than the id in other case */
    ok(odd != NULL && pgw_catalog_find(c, H2O_STRLIT("an odd bot")) == odd);
    ok(pgw_catalog_find(c, H2O_STRLIT("An Odd")) == NULL);
    /* supported_features: strings only; none listed, none supported */
    ok(pgw_catalog_supports(c, gpt, "tools"));
    ok(pgw_catalog_supports(c, gpt, "web_search"));
    ok(!pgw_catalog_supports(c, gpt, "tool"));
    ok(!pgw_catalog_supports(c, grok, "tools"));
    ok(pgw_catalog_find(c, H2O_STRLIT("gpt-5-mini")) == NULL);
    ok(pgw_catalog_find(c, H2O_STRLIT("gpt")) == NULL);

    /* a reference outlives the registry's: release twice */
    pgw_catalog_retain(c);
    pgw_catalog_release(c);
    pgw_catalog_release(c);

    ok(pgw_catalog_parse(H2O_STRLIT("{\"data\":"), err, sizeof(err)) == NULL);
    ok(strstr(err, "not JSON") != NULL);
    ok(pgw_catalog_parse(H2O_STRLIT("{\"object\":\"list\"}"), err, sizeof(err)) == NULL);
    ok(strstr(err, "data") != NULL);
}
