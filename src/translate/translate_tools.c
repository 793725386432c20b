/* poe-gateway: MIT licence. The tools of a translated request (docs/mapping.md#tools).
 *
 * Each tool of `tools` becomes {"type":"function","function":{"name":...,"description":...,"parameters":...}} when
 * the client runs it. A typed tool is one of Anthropic's server tools, which Poe runs or nobody does: web search becomes
 * the bot's web_search knob when it declares one, and any other is refused by the caller (docs/mapping.md#server-tools),
 * never dropped unsaid. A tool's
 * keys come in any order, and its name may change after it was read (two names that collide after mapping both take
 * the hashed form, docs/mapping.md#tool-names), so each kept tool is held as the fragment after its name
 * (`,"description":...,"parameters":{...}}}`), and the names are written with the fragments at the end. The schema
 * itself is written by the cleaner (src/translate/translate_schema.c) into the buffer pgw_tools_schema hands out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/socket.h>
#include "common/json.h"
#include "common/log.h"
#include "translate/translate_knobs.h"
#include "translate/translate_tools.h"

#define MODULE_NAME "translate_tools"

struct tool {
    size_t frag_off, frag_len; /* `,"description":...,"parameters":{...}}}` in `frags` */
    size_t entry;              /* in `names` */
};

struct st_pgw_tools_t {
    pgw_toolnames_t *names;
    pgw_estimate_t *est;
    h2o_buffer_t *frags;
    h2o_buffer_t *schema; /* the tool being read: its cleaned input_schema */
    H2O_VECTOR(struct tool) kept;
    int collided;
    char web_search[64]; /* the type of the web_search tool listed, "" when none */
    char refused[64];    /* the type of the first other server tool listed, "" when none */
};

static void append_quoted(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_json_append_quoted(buf, s, len);
}

static int is(h2o_iovec_t v, const char *lit)
{
    size_t len = strlen(lit);
    return v.base != NULL && v.len == len && memcmp(v.base, lit, len) == 0;
}

pgw_tools_t *pgw_tools_create(pgw_toolnames_t *names, pgw_estimate_t *est)
{
    pgw_tools_t *t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    t->names = names;
    t->est = est;
    h2o_buffer_init(&t->frags, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&t->schema, &h2o_socket_buffer_prototype);
    return t;
}

void pgw_tools_destroy(pgw_tools_t *t)
{
    h2o_buffer_dispose(&t->frags);
    h2o_buffer_dispose(&t->schema);
    free(t->kept.entries);
    free(t);
}

h2o_buffer_t **pgw_tools_schema(pgw_tools_t *t)
{
    t->schema->size = 0;
    return &t->schema;
}

int pgw_tools_end(pgw_tools_t *t, h2o_iovec_t type, h2o_iovec_t name, h2o_iovec_t description, int has_schema)
{
    char plain[PGW_TOOLNAME_MAX + 1];
    size_t frag_start = t->frags->size;

    /* typed tools are Anthropic's server tools (web search, code execution, bash, text editor, computer, memory, tool
     * search, MCP toolsets): no function the client runs */
    if (type.base != NULL && !is(type, "custom")) {
        int search = type.len > 11 && memcmp(type.base, "web_search_", 11) == 0;
        char *slot = search ? t->web_search : t->refused;
        if (slot[0] == '\0')
            snprintf(slot, sizeof(t->refused), "%.*s", (int)(type.len < 63 ? type.len : 63), type.base);
        return 0;
    }
    if (name.base == NULL)
        return -1;
    if (pgw_toolnames_mapped(t->names, name.base, name.len) != NULL) {
        pgw_log_warn(MODULE_NAME, "a tool is listed twice; the first one is kept");
        return 0;
    }
    pgw_buf_append_lit(&t->frags, ",\"description\":");
    append_quoted(&t->frags, description.base != NULL ? description.base : "", description.len);
    pgw_buf_append_lit(&t->frags, ",\"parameters\":");
    /* only input_schema becomes parameters; nothing else of the tool is merged in (docs/mapping.md#tools) */
    if (has_schema)
        pgw_buf_append(&t->frags, t->schema->bytes, t->schema->size);
    else
        pgw_buf_append_lit(&t->frags, "{\"type\":\"object\",\"properties\":{}}");
    pgw_buf_append_lit(&t->frags, "}}");

    size_t entry = t->names->num_entries;
    pgw_toolnames_add(t->names, name.base, name.len);
    pgw_toolname_map(name.base, name.len, plain);
    if (strcmp(t->names->entries[entry].mapped, plain) != 0)
        t->collided = 1;
    h2o_vector_reserve(NULL, &t->kept, t->kept.size + 1);
    t->kept.entries[t->kept.size++] = (struct tool){frag_start, t->frags->size - frag_start, entry};
    ++t->est->num_tools;
    pgw_estimate_add_text(t->est, name.base, name.len);
    pgw_estimate_add_text(t->est, t->frags->bytes + frag_start, t->frags->size - frag_start);
    return 0;
}

int pgw_tools_collided(const pgw_tools_t *t)
{
    return t->collided;
}

void pgw_tools_write(pgw_tools_t *t, const pgw_tool_choice_t *choice, const pgw_extra_body_t *pins, h2o_buffer_t **out)
{
    if (t->kept.size == 0 || pgw_extra_body_has(pins, "tools"))
        return; /* no tool left: no tool_choice or parallel_tool_calls either (a choice without tools is a 400) */
    pgw_buf_append_lit(out, ",\"tools\":[");
    for (size_t i = 0; i != t->kept.size; ++i) {
        const struct tool *tool = &t->kept.entries[i];
        const char *name = t->names->entries[tool->entry].mapped;
        if (i != 0)
            pgw_buf_append_lit(out, ",");
        pgw_buf_append_lit(out, "{\"type\":\"function\",\"function\":{\"name\":");
        append_quoted(out, name, strlen(name));
        pgw_buf_append(out, t->frags->bytes + tool->frag_off, tool->frag_len);
    }
    pgw_buf_append_lit(out, "]");

    /* docs/mapping.md#tool-choice */
    if (choice->type.base != NULL && !pgw_extra_body_has(pins, "tool_choice")) {
        pgw_buf_append_lit(out, ",\"tool_choice\":");
        if (is(choice->type, "any")) {
            pgw_buf_append_lit(out, "\"required\""); /* "auto" loses the forcing; "any" is not a value */
        } else if (is(choice->type, "none")) {
            pgw_buf_append_lit(out, "\"none\"");
        } else if (is(choice->type, "tool")) {
            const char *name = pgw_toolnames_mapped(t->names, choice->name.base != NULL ? choice->name.base : "", choice->name.len);
            if (name != NULL) {
                pgw_buf_append_lit(out, "{\"type\":\"function\",\"function\":{\"name\":");
                append_quoted(out, name, strlen(name));
                pgw_buf_append_lit(out, "}}");
            } else {
                /* a tool that was dropped (a server tool) or never listed: forcing another one would be wrong */
                pgw_buf_append_lit(out, "\"auto\"");
            }
        } else {
            pgw_buf_append_lit(out, "\"auto\"");
        }
    }
    if (choice->disable_parallel && !pgw_extra_body_has(pins, "parallel_tool_calls"))
        pgw_buf_append_lit(out, ",\"parallel_tool_calls\":false");
}

void pgw_tools_server(pgw_tools_t *t, const pgw_tool_choice_t *choice, const pgw_bot_t *bot, const pgw_extra_body_t *pins,
                      h2o_buffer_t **out, pgw_translated_t *res)
{
    const char *refused = t->refused;

    if (is(choice->type, "none"))
        return; /* no tool is to be used, server tools included: nothing to run, nothing to refuse */

    if (t->web_search[0] != '\0') {
        if (pgw_knobs_web_search(bot, pins)) {
            if (!pgw_extra_body_has(pins, "web_search"))
                pgw_buf_append_lit(out, ",\"web_search\":true");
            res->web_search = 1;
        } else if (refused[0] == '\0') {
            refused = t->web_search;
        }
    }
    snprintf(res->refused_tool, sizeof(res->refused_tool), "%s", refused);
}
