/* poe-gateway: MIT licence. Thinking and effort for a Poe bot (docs/mapping.md#thinking-and-effort): which of the knobs a
 * bot declares in Poe's catalog a request's `thinking` and `output_config.effort` become. */
#ifndef PGW_TRANSLATE_KNOBS_H
#define PGW_TRANSLATE_KNOBS_H

#include <h2o/memory.h>
#include "translate/translate.h"

/** What a request asks of the model's reasoning, as the request translator read it. */
typedef struct st_pgw_thinking_t {
    h2o_iovec_t type; /* thinking.type ("enabled", "adaptive", "disabled", ...); base NULL when absent */
    long long budget; /* thinking.budget_tokens, when has_budget */
    int has_budget;
    h2o_iovec_t effort;   /* output_config.effort; base NULL when absent */
    long long max_tokens; /* the request's max_tokens as sent upstream (a budget must stay below it); 0 when absent */
} pgw_thinking_t;

/**
 * Appends the reasoning fields `thinking` maps to on `bot` to `*out`, each as `,"name":value`: only knobs the bot declares,
 * at most one budget or one effort, plus enable_thinking when declared; none for a NULL bot (no catalog entry), nor
 * when thinking is absent, disabled or of an unknown type; none that `pins` (the route's extra_body, may be NULL)
 * holds, since a pin wins.
 */
void pgw_knobs_append(h2o_buffer_t **out, const pgw_bot_t *bot, const pgw_thinking_t *thinking, const pgw_extra_body_t *pins);

/**
 * 1 when a request may search the web on `bot` (docs/mapping.md#web-search): the bot declares Poe's boolean web_search
 * knob, or the route's extra_body (`pins`, may be NULL) sets web_search itself. 0 for a NULL bot without such a pin.
 */
int pgw_knobs_web_search(const pgw_bot_t *bot, const pgw_extra_body_t *pins);

#endif
