/* poe-gateway: MIT licence. The tools of a translated request (docs/mapping.md#tools): which of the Anthropic `tools` go
 * upstream and under which names, and what `tool_choice` becomes. The request translator (src/translate/translate_request.c)
 * hands over each tool as it closes. */
#ifndef PGW_TRANSLATE_TOOLS_H
#define PGW_TRANSLATE_TOOLS_H

#include <h2o/memory.h>
#include "translate/estimate.h"
#include "translate/translate.h"

typedef struct st_pgw_tools_t pgw_tools_t;

/** The request's tool_choice as read; strings base NULL when absent. */
typedef struct st_pgw_tool_choice_t {
    h2o_iovec_t type; /* "auto", "any", "tool" or "none" (the translator refuses others) */
    h2o_iovec_t name; /* the tool, for "tool" */
    int disable_parallel;
} pgw_tool_choice_t;

/**
 * Starts the tools of one request. The names of the tools kept are added to `*names` (the result's, which outlives the
 * returned object); what is written is counted into `*est`.
 */
pgw_tools_t *pgw_tools_create(pgw_toolnames_t *names, pgw_estimate_t *est);
void pgw_tools_destroy(pgw_tools_t *t);

/**
 * A tool's input_schema opens. Returns the buffer it is to be written into, cleaned (emptied now, owned by `t`), for
 * pgw_tools_end.
 */
h2o_buffer_t **pgw_tools_schema(pgw_tools_t *t);

/**
 * The tool has closed: its `type`, `name` and `description` as read (base NULL when absent), and whether an
 * input_schema was written. A typed tool (one of Anthropic's server tools) does not become a function: it is noted for
 * pgw_tools_server. A second tool of a name already listed is dropped (with a warning). Returns 0, or -1 when a function
 * tool has no name (a 400).
 */
int pgw_tools_end(pgw_tools_t *t, h2o_iovec_t type, h2o_iovec_t name, h2o_iovec_t description, int has_schema);

/** 1 when two tools' names collided after mapping, which changed the mapping of both (docs/mapping.md#tool-names). */
int pgw_tools_collided(const pgw_tools_t *t);

/**
 * Appends `tools`, `tool_choice` and `parallel_tool_calls` to `*out`, each as `,"name":value`: none of them when no tool
 * is kept (a choice without tools is a 400), and none that `pins` (the route's extra_body, may be NULL) holds.
 */
void pgw_tools_write(pgw_tools_t *t, const pgw_tool_choice_t *choice, const pgw_extra_body_t *pins, h2o_buffer_t **out);

/**
 * The server tools noted (docs/mapping.md#server-tools): a web_search tool (any dated version) becomes the bot's
 * web_search knob when `bot` declares it or `pins` sets it (`,"web_search":true` appended to `*out`, unless pinned) and
 * res->web_search is set; otherwise, and for any other server tool, res->refused_tool names the first tool's type that
 * cannot run. Nothing of either when `choice` is "none": no tool is to be used.
 */
void pgw_tools_server(pgw_tools_t *t, const pgw_tool_choice_t *choice, const pgw_bot_t *bot, const pgw_extra_body_t *pins,
                      h2o_buffer_t **out, pgw_translated_t *res);

#endif
