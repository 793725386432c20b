/* poe-gateway: MIT licence. Unit tests for src/translate/translate_tools.c: the tools of a translated request
 * (docs/mapping.md#tools). Whole requests are tested in translate_request.c. */
#include <h2o/socket.h>
#include "../../../../src/translate/translate_tools.c"
#include "../../test.h"

static h2o_iovec_t S(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

/* a tool with a schema written the way the cleaner would (NULL: none) */
static int add(pgw_tools_t *t, const char *type, const char *name, const char *description, const char *schema)
{
    if (schema != NULL)
        pgw_buf_append_str(pgw_tools_schema(t), schema);
    return pgw_tools_end(t, S(type), S(name), S(description), schema != NULL);
}

/* what pgw_tools_write appends, with ' for " */
static const char *written(pgw_tools_t *t, const char *choice_type, const char *choice_name, int disable_parallel, const char *pins)
{
    static char result[1024];
    pgw_tool_choice_t choice = {S(choice_type), S(choice_name), disable_parallel};
    pgw_extra_body_t *x = pins != NULL ? pgw_extra_body_parse(pins, strlen(pins)) : NULL;
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_tools_write(t, &choice, x, &out);
    snprintf(result, sizeof(result), "%.*s", (int)out->size, out->bytes);
    for (char *p = result; *p != '\0'; ++p)
        if (*p == '"')
            *p = '\'';
    h2o_buffer_dispose(&out);
    free(x);
    return result;
}

static void test_kept(void)
{
    pgw_toolnames_t names = {NULL};
    pgw_estimate_t est = {0};
    pgw_tools_t *t = pgw_tools_create(&names, &est);
    char log[512];

    is_int(add(t, NULL, "Read", "Reads", "{'type':'object'}"), 0);
    /* server tools are dropped; "custom" is a plain tool */
    is_int(add(t, "web_search_20250305", "web_search", NULL, NULL), 0);
    is_int(add(t, "custom", "mcp.x/y", NULL, NULL), 0);
    /* a second tool of the same name: the first is kept */
    stderr_capture_begin();
    is_int(add(t, NULL, "Read", "again", NULL), 0);
    ok(strstr(stderr_capture_end(log, sizeof(log)), "[translate_tools] a tool is listed twice") != NULL);
    /* a tool needs a name, unless it is a server tool */
    is_int(add(t, NULL, NULL, "d", NULL), -1);
    is_int(names.num_entries, 2);
    ok(!pgw_tools_collided(t));
    is_int(est.num_tools, 2);
    is_str(written(t, NULL, NULL, 0, NULL),
           ",'tools':[{'type':'function','function':{'name':'Read','description':'Reads','parameters':{'type':'object'}}},"
           "{'type':'function','function':{'name':'mcp_x_y','description':'','parameters':{'type':'object','properties':{}}}}]");
    pgw_tools_destroy(t);
    pgw_toolnames_dispose(&names);
}

static void test_choice(void)
{
    pgw_toolnames_t names = {NULL};
    pgw_estimate_t est = {0};
    pgw_tools_t *t = pgw_tools_create(&names, &est);
    const char *tools = ",'tools':[{'type':'function','function':{'name':'mcp_x','description':'','parameters':{}}}]";
    char expected[512];

    add(t, NULL, "mcp.x", NULL, "{}");
#define CHOICE(type, name, parallel, tail)                                                                                         \
    do {                                                                                                                           \
        snprintf(expected, sizeof(expected), "%s%s", tools, tail);                                                                 \
        is_str(written(t, type, name, parallel, NULL), expected);                                                                  \
    } while (0)
    CHOICE(NULL, NULL, 0, "");
    CHOICE("auto", NULL, 0, ",'tool_choice':'auto'");
    CHOICE("any", NULL, 0, ",'tool_choice':'required'");
    CHOICE("none", NULL, 0, ",'tool_choice':'none'");
    CHOICE("tool", "mcp.x", 0, ",'tool_choice':{'type':'function','function':{'name':'mcp_x'}}");
    /* a tool not sent cannot be forced */
    CHOICE("tool", "web_search", 0, ",'tool_choice':'auto'");
    CHOICE("auto", NULL, 1, ",'tool_choice':'auto','parallel_tool_calls':false");
#undef CHOICE
    /* pins win */
    is_str(written(t, "any", NULL, 1, "\"tool_choice\":\"auto\""),
           ",'tools':[{'type':'function','function':{'name':'mcp_x',"
           "'description':'','parameters':{}}}],'parallel_tool_calls':false");
    is_str(written(t, "any", NULL, 1, "\"tools\":[]"), "");
    is_str(written(t, "any", NULL, 1, "\"parallel_tool_calls\":true"),
           ",'tools':[{'type':'function','function':{'name':'mcp_x','description':'','parameters':{}}}],'tool_choice':'required'");
    pgw_tools_destroy(t);
    pgw_toolnames_dispose(&names);

    /* no tool kept: no choice either (a choice without tools is a 400) */
    t = pgw_tools_create(&names, &est);
    add(t, "bash_20250124", "bash", NULL, NULL);
    is_str(written(t, "any", NULL, 1, NULL), "");
    pgw_tools_destroy(t);
    pgw_toolnames_dispose(&names);
}

static void test_collisions(void)
{
    pgw_toolnames_t names = {NULL};
    pgw_estimate_t est = {0};
    pgw_tools_t *t = pgw_tools_create(&names, &est);

    add(t, NULL, "a.b", NULL, NULL);
    ok(!pgw_tools_collided(t));
    add(t, NULL, "a_b", NULL, NULL);
    ok(pgw_tools_collided(t));
    /* both written under their final (hashed) names */
    const char *out = written(t, NULL, NULL, 0, NULL);
    ok(strstr(out, pgw_toolnames_mapped(&names, H2O_STRLIT("a.b"))) != NULL);
    ok(strstr(out, pgw_toolnames_mapped(&names, H2O_STRLIT("a_b"))) != NULL);
    ok(strstr(out, "'name':'a_b'") == NULL);
    pgw_tools_destroy(t);
    pgw_toolnames_dispose(&names);
}

/* what pgw_tools_server appends for the tools of `types` (NULL-terminated) and the tool_choice type `choice_type` on
 * `bot`, with ' for "; the result in *res */
static const char *server_choice(const char *const *types, const char *choice_type, const pgw_bot_t *bot, const char *pins,
                                 pgw_translated_t *res)
{
    pgw_tool_choice_t choice = {S(choice_type)};
    static char result[256];
    pgw_toolnames_t names = {NULL};
    pgw_estimate_t est = {0};
    pgw_tools_t *t = pgw_tools_create(&names, &est);
    pgw_extra_body_t *x = pins != NULL ? pgw_extra_body_parse(pins, strlen(pins)) : NULL;
    h2o_buffer_t *out;

    add(t, NULL, "Read", NULL, NULL);
    for (; *types != NULL; ++types)
        is_int(add(t, *types, strchr(*types, '_') != NULL ? "x" : NULL, NULL, NULL), 0);
    memset(res, 0, sizeof(*res));
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_tools_server(t, &choice, bot, x, &out, res);
    snprintf(result, sizeof(result), "%.*s", (int)out->size, out->bytes);
    for (char *p = result; *p != '\0'; ++p)
        if (*p == '"')
            *p = '\'';
    h2o_buffer_dispose(&out);
    free(x);
    pgw_tools_destroy(t);
    pgw_toolnames_dispose(&names);
    return result;
}

static const char *server(const char *const *types, const pgw_bot_t *bot, const char *pins, pgw_translated_t *res)
{
    return server_choice(types, NULL, bot, pins, res);
}

/* docs/mapping.md#server-tools: web search becomes the knob where the bot has it; anything else is refused, never dropped */
static void test_server(void)
{
    pgw_knob_t searching[] = {{"thinking_budget", PGW_KNOB_INTEGER, 0, 31999}, {"web_search", PGW_KNOB_BOOLEAN}};
    pgw_knob_t effort_only[] = {{"web_search", PGW_KNOB_ENUM}}; /* the name alone is not enough: Poe's knob is a boolean */
    pgw_bot_t can = {"gpt-5", 0, searching, 2}, cannot = {"grok-4", 0, NULL, 0}, odd = {"odd", 0, effort_only, 1};
    const char *none[] = {NULL}, *search[] = {"web_search_20250305", NULL}, *newer[] = {"web_search_20260209", NULL},
               *code[] = {"code_execution_20250825", NULL}, *both[] = {"web_search_20250305", "bash_20250124", NULL};
    pgw_translated_t res;

    is_str(server(none, &can, NULL, &res), "");
    ok(!res.web_search);
    is_str(res.refused_tool, "");
    is_str(server(search, &can, NULL, &res), ",'web_search':true");
    ok(res.web_search);
    is_str(res.refused_tool, "");
    is_str(server(newer, &can, NULL, &res), ",'web_search':true"); /* any dated version */
    ok(res.web_search);
    /* a bot without the knob, one whose knob is not Poe's boolean, no catalog entry: refused, nothing sent */
    is_str(server(search, &cannot, NULL, &res), "");
    ok(!res.web_search);
    is_str(res.refused_tool, "web_search_20250305");
    is_str(server(search, &odd, NULL, &res), "");
    is_str(res.refused_tool, "web_search_20250305");
    is_str(server(search, NULL, NULL, &res), "");
    is_str(res.refused_tool, "web_search_20250305");
    /* the route's extra_body pins it: the pin is what goes upstream */
    is_str(server(search, &cannot, "\"web_search\":true", &res), "");
    ok(res.web_search);
    is_str(res.refused_tool, "");
    /* other server tools run nowhere behind chat/completions */
    is_str(server(code, &can, NULL, &res), "");
    is_str(res.refused_tool, "code_execution_20250825");
    is_str(server(both, &can, NULL, &res), ",'web_search':true");
    is_str(res.refused_tool, "bash_20250124");
    /* tool_choice none: no tool is used, so none is refused and no search is asked for */
    is_str(server_choice(both, "none", &can, NULL, &res), "");
    ok(!res.web_search);
    is_str(res.refused_tool, "");
    is_str(server_choice(search, "none", &cannot, NULL, &res), "");
    is_str(res.refused_tool, "");
    is_str(server_choice(search, "any", &can, NULL, &res), ",'web_search':true");
}

void test_src__translate_tools_c(void)
{
    subtest("kept", test_kept);
    subtest("tool_choice", test_choice);
    subtest("collisions", test_collisions);
    subtest("server tools", test_server);
}
