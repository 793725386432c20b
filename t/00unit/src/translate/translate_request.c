/* poe-gateway: MIT licence. Unit tests for src/translate/translate_request.c: Anthropic request -> chat/completions
 * (docs/mapping.md), and golden cases.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "../../../../src/translate/translate_request.c"
#include "../../test.h"

/* ---- helpers ---- */

/* JSON written with single quotes for readability: every ' becomes " (the test texts avoid apostrophes) */
static char *q(const char *s)
{
    char *r = strdup(s);
    for (char *p = r; *p != '\0'; ++p)
        if (*p == '\'')
            *p = '"';
    return r;
}

static char *last_output;
static pgw_translated_t last_res;

/* ---- pgw_json_read against yajl: every body translated here is translated both ways and compared ---- */

static int reader_compared, reader_read, reader_differs;

/* 1 when the two results are the same, byte for byte */
static int same_res(const pgw_translated_t *a, const pgw_translated_t *b)
{
    if (a->stream != b->stream || a->max_tokens != b->max_tokens || a->input_tokens != b->input_tokens ||
        a->web_search != b->web_search || strcmp(a->refused_tool, b->refused_tool) != 0 ||
        a->toolnames.num_entries != b->toolnames.num_entries)
        return 0;
    for (size_t i = 0; i != a->toolnames.num_entries; ++i)
        if (strcmp(a->toolnames.entries[i].original, b->toolnames.entries[i].original) != 0 ||
            strcmp(a->toolnames.entries[i].mapped, b->toolnames.entries[i].mapped) != 0)
            return 0;
    for (size_t i = 0; i != 4; ++i)
        if ((a->stop_sequences[i] == NULL) != (b->stop_sequences[i] == NULL) ||
            (a->stop_sequences[i] != NULL && strcmp(a->stop_sequences[i], b->stop_sequences[i]) != 0))
            return 0;
    return 1;
}

/* Translates `body` with the body read by pgw_json_read and by yajl alone, and counts a difference in what comes out. */
static void both_ways(const char *body, size_t len, const pgw_translate_opts_t *opts)
{
    h2o_buffer_t *out[2];
    pgw_translated_t res[2];
    char err[2][512];
    int ret[2];
    for (int i = 0; i != 2; ++i) {
        h2o_buffer_init(&out[i], &h2o_socket_buffer_prototype);
        ret[i] = translate(body, len, opts, &out[i], &res[i], err[i], sizeof(err[i]), i == 0);
    }
    ++reader_compared;
    if (ret[0] != 1) {
        ++reader_read;
        int same = ret[0] == ret[1] &&
                   (ret[0] != 0 || (out[0]->size == out[1]->size && memcmp(out[0]->bytes, out[1]->bytes, out[0]->size) == 0 &&
                                    same_res(&res[0], &res[1])));
        same = same && (ret[0] == 0 || strcmp(err[0], err[1]) == 0);
        if (!same) {
            ++reader_differs;
            note("pgw_json_read and yajl differ on %.*s", (int)(len > 300 ? 300 : len), body);
        }
    }
    for (int i = 0; i != 2; ++i) {
        pgw_translated_dispose(&res[i]);
        h2o_buffer_dispose(&out[i]);
    }
}

static void test_reader(void)
{
    is_int(reader_differs, 0);
    note("%d bodies translated both ways, %d of them read by pgw_json_read", reader_compared, reader_read);
    ok(reader_read > 500);
    ok(reader_compared - reader_read > 500); /* the damaged ones are left to yajl */
}

/* Translates `body` (single-quoted JSON); returns the output, or "ERROR: <message>". */
static const char *run_opts(const char *body, const pgw_translate_opts_t *opts)
{
    char err[512], *in = q(body);
    h2o_buffer_t *out;

    free(last_output);
    pgw_translated_dispose(&last_res);
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    both_ways(in, strlen(in), opts);
    if (pgw_translate_request(in, strlen(in), opts, &out, &last_res, err, sizeof(err)) == 0) {
        last_output = h2o_strdup(NULL, out->bytes, out->size).base;
    } else {
        last_output = malloc(strlen(err) + 8);
        sprintf(last_output, "ERROR: %s", err);
    }
    h2o_buffer_dispose(&out);
    free(in);
    return last_output;
}

static const char *run(const char *body)
{
    pgw_translate_opts_t opts = {"bot"};
    return run_opts(body, &opts);
}

/* The expected output, single-quoted; compared byte for byte. */
#define is_json(got, expected)                                                                                                     \
    do {                                                                                                                           \
        char *e_ = q(expected);                                                                                                    \
        is_str((got), e_);                                                                                                         \
        free(e_);                                                                                                                  \
    } while (0)

#define HEAD "{'model':'bot','messages':["

/* ---- a JSON reformatter (yajl's reformatter pattern): whitespace-insensitive comparison of golden files ---- */

static int g_null(void *g)
{
    return yajl_gen_null(g) == yajl_gen_status_ok;
}
static int g_bool(void *g, int b)
{
    return yajl_gen_bool(g, b) == yajl_gen_status_ok;
}
static int g_number(void *g, const char *s, size_t l)
{
    return yajl_gen_number(g, s, l) == yajl_gen_status_ok;
}
static int g_string(void *g, const unsigned char *s, size_t l)
{
    return yajl_gen_string(g, s, l) == yajl_gen_status_ok;
}
static int g_start_map(void *g)
{
    return yajl_gen_map_open(g) == yajl_gen_status_ok;
}
static int g_end_map(void *g)
{
    return yajl_gen_map_close(g) == yajl_gen_status_ok;
}
static int g_start_array(void *g)
{
    return yajl_gen_array_open(g) == yajl_gen_status_ok;
}
static int g_end_array(void *g)
{
    return yajl_gen_array_close(g) == yajl_gen_status_ok;
}
static const yajl_callbacks gen_callbacks = {g_null,      g_bool,   NULL,      NULL,          g_number,   g_string,
                                             g_start_map, g_string, g_end_map, g_start_array, g_end_array};

/* Returns `json` re-generated (compact, or indented by two spaces), or NULL when it is not valid JSON. free() it. */
static char *reformat(const char *json, size_t len, int beautify)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, beautify);
    yajl_gen_config(g, yajl_gen_indent_string, "  ");
    yajl_handle h = yajl_alloc(&gen_callbacks, NULL, g);
    char *ret = NULL;
    if (yajl_parse(h, (const unsigned char *)json, len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok) {
        const unsigned char *buf;
        size_t blen;
        yajl_gen_get_buf(g, &buf, &blen);
        ret = h2o_strdup(NULL, (const char *)buf, blen).base;
    }
    yajl_free(h);
    yajl_gen_free(g);
    return ret;
}

/* ---- focused cases ---- */

static void test_basics(void)
{
    is_json(run("{'model':'claude-x','max_tokens':10,'messages':[{'role':'user','content':'Hi'}]}"),
            HEAD "{'role':'user','content':'Hi'}],'max_tokens':10}");
    /* the result */
    is_int(last_res.max_tokens, 10);
    is_int(last_res.stream, 0);
    ok(last_res.input_tokens > 0);

    /* stream asks for usage (MUST, docs/mapping.md#top-level-fields); numbers keep their literal text */
    is_json(run("{'stream':true,'temperature':0.70,'top_p':1e-1,'messages':[{'role':'user','content':'Hi'}],'max_tokens':1}"),
            HEAD "{'role':'user','content':'Hi'}],'max_tokens':1,'temperature':0.70,'top_p':1e-1,'stream':true,"
                 "'stream_options':{'include_usage':true}}");
    is_int(last_res.stream, 1);
    is_int(last_res.max_tokens, 1);

    /* no max_tokens (count_tokens): none sent, 0 reported */
    is_json(run("{'messages':[{'role':'user','content':'Hi'}],'stream':false}"), HEAD "{'role':'user','content':'Hi'}]}");
    is_int(last_res.max_tokens, 0);

    /* every field outside the allowlist stays behind (docs/mapping.md#top-level-fields) */
    is_json(run("{'model':'m','metadata':{'user_id':'{\\'device_id\\':\\'x\\'}'},'context_management':{'edits':[{'type':"
                "'clear_thinking_20251015','keep':'all'}]},'output_config':{'effort':'low','format':{'type':'json_schema'}},"
                "'container':'c','mcp_servers':[{'url':'u'}],'top_k':5,'service_tier':'auto','betas':['x'],'speed':'fast',"
                "'output_format':{},'unknown':{'deep':[1,[2,{'x':null}]]},'messages':[{'role':'user','content':'Hi','extra':1}]}"),
            HEAD "{'role':'user','content':'Hi'}]}");

    /* stop: the first four that are not whitespace-only */
    is_json(run("{'messages':[{'role':'user','content':'Hi'}],'stop_sequences':['\\n',' ','END','','a','b','c','d']}"),
            HEAD "{'role':'user','content':'Hi'}],'stop':['END','a','b','c']}");
    is_json(run("{'messages':[{'role':'user','content':'Hi'}],'stop_sequences':['\\t']}"), HEAD "{'role':'user','content':'Hi'}]}");

    /* nulls count as absent */
    is_json(run("{'messages':[{'role':'user','content':'Hi'}],'system':null,'tools':null,'tool_choice':null,'thinking':null,"
                "'temperature':null,'stream':null,'max_tokens':null,'stop_sequences':null}"),
            HEAD "{'role':'user','content':'Hi'}]}");
    /* the upstream model name is escaped */
    pgw_translate_opts_t opts = {"we\"ird"};
    is_str(run_opts("{'messages':[]}", &opts), "{\"model\":\"we\\\"ird\",\"messages\":[]}");
}

static void test_surrogates(void)
{
    /* a lone surrogate escape has no UTF-8 form: it goes upstream as U+FFFD (yajl alone gave bytes ED B0 80, or '?'
     * and a code point made of a high surrogate and whatever escape followed it) */
    is_json(run("{'messages':[{'role':'user','content':'a\\udc00b'}]}"), HEAD "{'role':'user','content':'a\xef\xbf\xbd" "b'}]}");
    is_json(run("{'messages':[{'role':'user','content':[{'type':'text','text':'\\ud800abc \\ud800\\u0041'}]}]}"),
            HEAD "{'role':'user','content':'\xef\xbf\xbd" "abc \xef\xbf\xbd" "A'}]}");
    /* a pair stays one character; other escapes are as before */
    is_json(run("{'messages':[{'role':'user','content':'\\ud83d\\ude00 \\u00e9\\n\\\\'}]}"),
            HEAD "{'role':'user','content':'\xf0\x9f\x98\x80 \xc3\xa9\\n\\\\'}]}");
    /* escaped keys, in the request and in a copied tool schema; strings in skipped values are not looked at */
    is_json(run("{'m\\u0065ssages':[{'r\\u006fle':'user','content':'Hi'}],'metadata':{'user_id':'\\udc00'},"
                "'tools':[{'name':'t','input_schema':{'type':'object','properties':{'k\\udc00':{'type':'string',"
                "'description':'\\'q\\' \\udfff'}}}}]}"),
            HEAD "{'role':'user','content':'Hi'}],'tools':[{'type':'function','function':{'name':'t','description':'',"
                 "'parameters':{'type':"
                 "'object','properties':{'k\xef\xbf\xbd':{'type':'string','description':'\\'q\\' \xef\xbf\xbd'}}}}}]}");
    ok(strstr(last_output, "\xed") == NULL);
}

static void test_unknown_types(void)
{
    char log[2048];

    /* a type the gateway does not know: its text goes, or nothing; the first one of the request is logged, its name
     * escaped (it is the client's) and cut at 64 bytes */
    stderr_capture_begin();
    is_json(run("{'messages':[{'role':'user','content':[{'type':'text','text':'a'},{'type':'fancy\\nthing','text':'b'},"
                "{'type':'widget'}]}]}"),
            HEAD "{'role':'user','content':[{'type':'text','text':'a'},{'type':'text','text':'b'}]}]}");
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "messages.0.content.1: block type \"fancy\\nthing\" is unknown to the gateway: only its text was sent") != NULL);
    ok(strstr(log, "widget") == NULL);
    /* in an assistant turn, and nested in a tool_result: the same */
    stderr_capture_begin();
    run("{'messages':[{'role':'assistant','content':[{'type':'gizmo'}]}]}");
    run("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'t1','name':'x','input':{}}]},{'role':'user',"
        "'content':[{'type':'tool_result','tool_use_id':'t1','content':[{'type':'doohickey','text':'c'}]}]}]}");
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "messages.0.content.0: block type \"gizmo\" is unknown to the gateway: dropped") != NULL);
    ok(strstr(log, "messages.1.content.0.content.0: block type \"doohickey\" is unknown to the gateway: only its text was sent") !=
       NULL);
    /* the types the translation knows, translated or dropped on purpose, say nothing */
    stderr_capture_begin();
    run("{'messages':[{'role':'user','content':[{'type':'text','text':'a'},{'type':'search_result','source':'s','title':'t',"
        "'content':[{'type':'text','text':'r'}]},{'type':'container_upload','file_id':'f'},{'type':'thinking','thinking':'x'}]},"
        "{'role':'assistant','content':[{'type':'redacted_thinking','data':'d'},{'type':'server_tool_use','id':'s','name':'w',"
        "'input':{}},{'type':'web_search_tool_result','tool_use_id':'s','content':[]},{'type':'text','text':'b'}]}]}");
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "unknown") == NULL);
}

static void test_system(void)
{
    /* blocks joined with a blank line; billing block, blank blocks, cache_control and other types dropped
     * (docs/mapping.md#system) */
    is_json(run("{'system':[{'type':'text','text':'x-anthropic-billing-header: cc_version=2.1.1; cc_entrypoint=cli; cch=1;'},"
                "{'type':'text','text':'You are Claude Code.','cache_control':{'type':'ephemeral','ttl':'1h'}},"
                "{'type':'text','text':'  '},{'type':'image','source':{}},{'text':'Be brief.','type':'text'}],"
                "'messages':[{'role':'user','content':'Hi'}]}"),
            HEAD "{'role':'system','content':'You are Claude Code.\\n\\nBe brief.'},{'role':'user','content':'Hi'}]}");
    /* a string with the billing line first: that line goes; system after messages still comes first */
    is_json(run("{'messages':[{'role':'user','content':'Hi'}],'system':'x-anthropic-billing-header: cch=2;\\nRules.'}"),
            HEAD "{'role':'system','content':'Rules.'},{'role':'user','content':'Hi'}]}");
    is_json(run("{'messages':[],'system':'  '}"), HEAD "]}");
    is_json(run("{'messages':[],'system':'Only system'}"), HEAD "{'role':'system','content':'Only system'}]}");
}

static void test_user_blocks(void)
{
    /* one text part: a plain string; empty and blank text blocks skipped (docs/mapping.md#messages) */
    is_json(run("{'messages':[{'role':'user','content':[{'type':'text','text':''},{'type':'text','text':'Hello',"
                "'cache_control':{'type':'ephemeral'}},{'type':'text','text':' \\n'}]}]}"),
            HEAD "{'role':'user','content':'Hello'}]}");
    /* a message left empty is dropped */
    is_json(run("{'messages':[{'role':'user','content':[{'type':'text','text':''}]},{'role':'user','content':''},"
                "{'role':'user','content':[]},{'role':'user','content':'ok'}]}"),
            HEAD "{'role':'user','content':'ok'}]}");
    /* images: base64 and URL; fields in any order */
    is_json(run("{'messages':[{'role':'user','content':[{'type':'text','text':'Look'},{'source':{'data':'QUJD','media_type':"
                "'image/png','type':'base64'},'type':'image'},{'type':'image','source':{'type':'url','url':'https://x/y.png'}},"
                "{'type':'image','source':{'type':'file','file_id':'file_1'}}]}]}"),
            HEAD "{'role':'user','content':[{'type':'text','text':'Look'},{'type':'image_url','image_url':{'url':"
                 "'data:image/png;base64,QUJD'}},{'type':'image_url','image_url':{'url':'https://x/y.png'}},"
                 "{'type':'text','text':'[image file file_1 not available]'}]}]}");
    /* the texts' shape (pgw_estimate_add_text) outweighs their bytes / 3: "Look" 18 twelfths, the note 160 */
    is_int(last_res.input_tokens, 15 + 4 + 2 * 1500);
    ok(last_res.input_tokens >= (long long)(4 + strlen("[image file file_1 not available]") + 2) / 3 + 4 + 2 * 1500);
    /* documents: PDF as a file part, text sources as text with the title first, URLs named, never fetched */
    is_json(
        run("{'messages':[{'role':'user','content':["
            "{'type':'document','source':{'type':'base64','media_type':'application/pdf','data':'JVBERi0x'},'title':'a.pdf'},"
            "{'type':'document','source':{'type':'base64','media_type':'application/pdf','data':'JVBERi0x'}},"
            "{'type':'document','source':{'type':'text','media_type':'text/plain','data':'Body'},'title':'Notes',"
            "'context':'ignored','citations':{'enabled':true}},"
            "{'type':'document','source':{'type':'content','content':[{'type':'text','text':'One'},{'type':'text','text':'Two'},"
            "{'type':'image','source':{'type':'url','url':'https://i/1.png'}}]}},"
            "{'type':'document','source':{'type':'content','content':'Plain'}},"
            "{'type':'document','source':{'type':'url','url':'https://x/doc.pdf'}},"
            "{'type':'document','source':{'type':'file','file_id':'file_9'}}]}]}"),
        HEAD "{'role':'user','content':["
             "{'type':'file','file':{'filename':'a.pdf','file_data':'data:application/pdf;base64,JVBERi0x'}},"
             "{'type':'file','file':{'filename':'doc.pdf','file_data':'data:application/pdf;base64,JVBERi0x'}},"
             "{'type':'text','text':'Notes\\n\\nBody'},"
             "{'type':'text','text':'One\\nTwo\\n[image attached below]'},"
             "{'type':'image_url','image_url':{'url':'https://i/1.png'}},"
             "{'type':'text','text':'Plain'},"
             "{'type':'text','text':'[document at https://x/doc.pdf (not fetched)]'},"
             "{'type':'text','text':'[document file file_9 not available]'}]}]}");
    /* search results flatten to text; unknown types give their text or nothing; thinking in a user turn is dropped */
    is_json(run("{'messages':[{'role':'user','content':[{'type':'search_result','source':'https://s/1','title':'T','content':"
                "[{'type':'text','text':'Found'}]},{'type':'future_block','text':'Kept text'},{'type':'future_block','x':1},"
                "{'type':'thinking','thinking':'no','signature':'s'}]}]}"),
            HEAD
            "{'role':'user','content':[{'type':'text','text':'T\\nhttps://s/1\\nFound'},{'type':'text','text':'Kept text'}]}]}");
}

static void test_tool_turns(void)
{
    /* assistant text joined and tool calls; user text before the results moves after the tool messages
     * (docs/mapping.md#tool-results); is_error as a prefix; array content joined; images attached to the user message
     * that follows */
    is_json(
        run("{'messages':[{'role':'user','content':'Go'},"
            "{'role':'assistant','content':[{'type':'thinking','thinking':'hmm','signature':'sig'},{'type':'text','text':"
            "'Reading.'},{'type':'text','text':''},{'type':'text','text':'Two files.'},{'type':'tool_use','id':'toolu_A',"
            "'name':'Read','input':{'file_path':'/a','limit':1.50}},{'type':'tool_use','id':'toolu_B','name':'Screenshot',"
            "'input':{}}]},"
            "{'role':'user','content':[{'type':'text','text':'Before results'},{'type':'tool_result','tool_use_id':'toolu_A',"
            "'content':'No such file','is_error':true,'cache_control':{'type':'ephemeral'}},{'type':'tool_result',"
            "'tool_use_id':'toolu_B','content':[{'type':'text','text':'Shot:'},{'type':'image','source':{'type':'base64',"
            "'media_type':'image/jpeg','data':'/9j/'}}],'is_error':false},{'type':'text','text':'After'}]}]}"),
        HEAD
        "{'role':'user','content':'Go'},"
        "{'role':'assistant','content':'Reading.\\nTwo files.','tool_calls':["
        "{'id':'toolu_A','type':'function','function':{'name':'Read','arguments':'{\\'file_path\\':\\'/a\\',\\'limit\\':1.50}'}},"
        "{'id':'toolu_B','type':'function','function':{'name':'Screenshot','arguments':'{}'}}]},"
        "{'role':'tool','tool_call_id':'toolu_A','content':'[tool error] No such file'},"
        "{'role':'tool','tool_call_id':'toolu_B','content':'Shot:\\n[image attached below]'},"
        "{'role':'user','content':[{'type':'text','text':'Before results'},{'type':'image_url','image_url':{'url':"
        "'data:image/jpeg;base64,/9j/'}},{'type':'text','text':'After'}]}]}");

    /* only tool calls: content null; absent input: "{}"; a call left unanswered: a synthetic tool message after the real
     * ones; empty/null/[] results: (no output); tool_reference: [Loaded tool: name] */
    is_json(run("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'Bash'},{'type':'tool_use',"
                "'id':'b','name':'Bash','input':{'command':'ls'}},{'type':'tool_use','id':'c','name':'ToolSearch','input':{}},"
                "{'type':'tool_use','id':'d','name':'X','input':{}},{'type':'tool_use','id':'e','name':'X','input':{}},"
                "{'type':'tool_use','id':'f','name':'X','input':{}}]},"
                "{'role':'user','content':[{'type':'tool_result','tool_use_id':'b','content':''},{'type':'tool_result',"
                "'tool_use_id':'c','content':[{'type':'tool_reference','tool_name':'WebFetch'}]},{'type':'tool_result',"
                "'tool_use_id':'d','content':[]},{'type':'tool_result','tool_use_id':'e','content':null},{'type':'tool_result',"
                "'tool_use_id':'f','content':[{'type':'text','text':' '}],'is_error':true}]}]}"),
            HEAD "{'role':'assistant','content':null,'tool_calls':["
                 "{'id':'a','type':'function','function':{'name':'Bash','arguments':'{}'}},"
                 "{'id':'b','type':'function','function':{'name':'Bash','arguments':'{\\'command\\':\\'ls\\'}'}},"
                 "{'id':'c','type':'function','function':{'name':'ToolSearch','arguments':'{}'}},"
                 "{'id':'d','type':'function','function':{'name':'X','arguments':'{}'}},"
                 "{'id':'e','type':'function','function':{'name':'X','arguments':'{}'}},"
                 "{'id':'f','type':'function','function':{'name':'X','arguments':'{}'}}]},"
                 "{'role':'tool','tool_call_id':'b','content':'(no output)'},"
                 "{'role':'tool','tool_call_id':'c','content':'[Loaded tool: WebFetch]'},"
                 "{'role':'tool','tool_call_id':'d','content':'(no output)'},"
                 "{'role':'tool','tool_call_id':'e','content':'(no output)'},"
                 "{'role':'tool','tool_call_id':'f','content':'[tool error] (no output)'},"
                 "{'role':'tool','tool_call_id':'a','content':'[tool call interrupted]'}]}");

    /* orphans: a result nobody asked for becomes user text; a second result for one call too; a trailing call is answered */
    is_json(
        run("{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'zz','content':'late'}]},"
            "{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':{}}]},"
            "{'role':'user','content':[{'type':'tool_result','tool_use_id':'a','content':'1'},{'type':'tool_result',"
            "'tool_use_id':'a','content':'2','is_error':true}]},"
            "{'role':'assistant','content':[{'type':'text','text':'Again'},{'type':'tool_use','id':'b','name':'T','input':{}}]}]}"),
        HEAD
        "{'role':'user','content':'[tool result] late'},"
        "{'role':'assistant','content':null,'tool_calls':[{'id':'a','type':'function','function':{'name':'T','arguments':'{}'}}]},"
        "{'role':'tool','tool_call_id':'a','content':'1'},"
        "{'role':'user','content':'[tool error] 2'},"
        "{'role':'assistant','content':'Again','tool_calls':[{'id':'b','type':'function','function':{'name':'T','arguments':'{}'}}]"
        "},"
        "{'role':'tool','tool_call_id':'b','content':'[tool call interrupted]'}]}");

    /* an assistant turn right after one with calls: those calls are answered as interrupted first */
    is_json(
        run("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':{}}]},"
            "{'role':'assistant','content':'Next'}]}"),
        HEAD
        "{'role':'assistant','content':null,'tool_calls':[{'id':'a','type':'function','function':{'name':'T','arguments':'{}'}}]},"
        "{'role':'tool','tool_call_id':'a','content':'[tool call interrupted]'},{'role':'assistant','content':'Next'}]}");

    /* tool input is copied as its raw text: literals, escapes, nesting */
    is_json(run("{'messages':[{'role':'assistant','content':[{'input':{'n':[1.0,-0,2e400,12345678901234567890],'s':'\\u00e9\\n',"
                "'o':{'t':true,'f':false,'z':null}},'name':'T','id':'a','type':'tool_use'}]},"
                "{'role':'user','content':[{'type':'tool_result','tool_use_id':'a','content':'ok'}]}]}"),
            HEAD "{'role':'assistant','content':null,'tool_calls':[{'id':'a','type':'function','function':{'name':'T','arguments':"
                 "'{\\'n\\':[1.0,-0,2e400,12345678901234567890],\\'s\\':\\'\\\\u00e9\\\\n\\',\\'o\\':{\\'t\\':true,\\'f\\':false,"
                 "\\'z\\':null}}'}}]},{'role':'tool','tool_call_id':'a','content':'ok'}]}");
}

static void test_thinking_history(void)
{
    const char *body = "{'messages':[{'role':'user','content':'Q'},{'role':'assistant','content':[{'type':'thinking','thinking':"
                       "'Plan A','signature':'s1'},{'type':'redacted_thinking','data':'xx'},{'type':'thinking','thinking':'Plan B',"
                       "'signature':''},{'type':'tool_use','id':'a','name':'T','input':{}}]},{'role':'user','content':[{'type':"
                       "'tool_result','tool_use_id':'a','content':'r'}]},{'role':'assistant','content':[{'type':'thinking',"
                       "'thinking':'only thinking'}]}]}";
    /* dropped, never folded into text; an assistant turn of thinking only is dropped */
    is_json(run(body),
            HEAD "{'role':'user','content':'Q'},{'role':'assistant','content':null,'tool_calls':[{'id':'a','type':"
                 "'function','function':{'name':'T','arguments':'{}'}}]},{'role':'tool','tool_call_id':'a','content':'r'}]}");
    /* echo_reasoning: reasoning_content, without signatures; still no message for thinking alone */
    pgw_translate_opts_t opts = {"bot", NULL, NULL, 1};
    is_json(run_opts(body, &opts),
            HEAD "{'role':'user','content':'Q'},{'role':'assistant','content':null,'reasoning_content':'Plan A\\nPlan B',"
                 "'tool_calls':[{'id':'a','type':'function','function':{'name':'T','arguments':'{}'}}]},"
                 "{'role':'tool','tool_call_id':'a','content':'r'}]}");
    /* assistant string content; a blank one is dropped */
    is_json(
        run("{'messages':[{'role':'user','content':'Q'},{'role':'assistant','content':'A'},{'role':'assistant','content':' '}]}"),
        HEAD "{'role':'user','content':'Q'},{'role':'assistant','content':'A'}]}");
}

static void test_system_role(void)
{
    /* a run of system messages: one user message, after the tool messages answering the previous turn
     * (docs/mapping.md#messages) */
    is_json(run("{'messages':[{'role':'user','content':'Q'},{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T',"
                "'input':{}}]},{'role':'system','content':'Mode changed.'},{'role':'system','content':[{'type':'text','text':"
                "'Second note.'},{'type':'image','source':{'type':'url','url':'u'}}]},{'role':'user','content':[{'type':'text',"
                "'text':'Continue'},{'type':'tool_result','tool_use_id':'a','content':'done'}]}]}"),
            HEAD
            "{'role':'user','content':'Q'},{'role':'assistant','content':null,'tool_calls':[{'id':'a','type':'function',"
            "'function':{'name':'T','arguments':'{}'}}]},{'role':'tool','tool_call_id':'a','content':'done'},"
            "{'role':'user','content':'[system note] Mode changed.\\n\\nSecond note.'},{'role':'user','content':'Continue'}]}");
    /* before an assistant turn, and at the end */
    is_json(run("{'messages':[{'role':'user','content':'Q'},{'role':'system','content':'N1'},{'role':'assistant','content':'A'},"
                "{'role':'system','content':'N2'}]}"),
            HEAD "{'role':'user','content':'Q'},{'role':'user','content':'[system note] N1'},{'role':'assistant','content':'A'},"
                 "{'role':'user','content':'[system note] N2'}]}");
    /* a system message whose text is blank adds nothing */
    is_json(run("{'messages':[{'role':'system','content':''},{'role':'user','content':'Q'}]}"),
            HEAD "{'role':'user','content':'Q'}]}");
}

static void test_key_order(void)
{
    /* role after content: the content is replayed once the role is known, with the same result */
    const char *first =
        "{'messages':[{'role':'assistant','content':[{'type':'text','text':'T'},{'type':'tool_use','id':'a','name':"
        "'N','input':{'x':[1,{'y':2}]}}]},{'role':'user','content':[{'type':'text','text':'U'},{'type':'tool_result',"
        "'tool_use_id':'a','content':[{'type':'text','text':'R'}]}]}]}";
    const char *later = "{'messages':[{'content':[{'type':'text','text':'T'},{'input':{'x':[1,{'y':2}]},'type':'tool_use','id':'a',"
                        "'name':'N'}],'role':'assistant'},{'content':[{'text':'U','type':'text'},{'content':[{'text':'R','type':"
                        "'text'}],'tool_use_id':'a','type':'tool_result'}],'role':'user'}]}";
    char *expected = strdup(run(first));
    is_str(run(later), expected);
    free(expected);
    /* errors inside replayed content name the right field */
    is_str(run("{'messages':[{'content':[{'type':'text','text':'a'},{'text':'b'}],'role':'user'}]}"),
           "ERROR: messages.0.content.1.type: required");
    /* top-level order: tools, system and knobs after messages make no difference */
    is_json(
        run("{'messages':[{'role':'user','content':'Q'}],'tool_choice':{'type':'any'},'tools':[{'input_schema':{'type':'object'},"
            "'name':'T'}],'system':'S','max_tokens':5}"),
        HEAD "{'role':'system','content':'S'},{'role':'user','content':'Q'}],'max_tokens':5,'tools':[{'type':'function',"
             "'function':{'name':'T','description':'','parameters':{'type':'object'}}}],'tool_choice':'required'}");
}

static void test_tools(void)
{
    /* schema cleanup (docs/mapping.md#tool-schemas): $schema/$id/$comment and non-ECMA patterns go; property names,
     * data and good patterns stay */
    is_json(run("{'messages':[],'tools':[{'name':'Grep','description':'Search','input_schema':{'$schema':'http://json-schema.org/"
                "draft-07/schema#','$id':'x','type':'object','properties':{'pattern':{'type':'string','pattern':'^[a-z]+$'},"
                "'$id':{'type':'string','$comment':'c'},'word':{'type':'string','pattern':'^\\\\p{L}+$'},'n':{'type':'number',"
                "'minimum':0.5,'default':{'$schema':'data'}},'mode':{'enum':['a','b'],'pattern':'(?i)x'}},'required':['pattern'],"
                "'additionalProperties':false},'cache_control':{'type':'ephemeral'},'strict':true}]}"),
            HEAD "],'tools':[{'type':'function','function':{'name':'Grep','description':'Search','parameters':{'type':'object',"
                 "'properties':{'pattern':{'type':'string','pattern':'^[a-z]+$'},'$id':{'type':'string'},'word':{'type':'string'},"
                 "'n':{'type':'number','minimum':0.5,'default':{'$schema':'data'}},'mode':{'enum':['a','b']}},'required':"
                 "['pattern'],'additionalProperties':false}}}]}");
    /* no schema: an empty object schema; server tools dropped; defer_loading kept as a normal tool; long names hashed */
    is_json(
        run("{'messages':[],'tools':[{'name':'NoSchema'},{'type':'web_search_20250305','name':'web_search','max_uses':5},"
            "{'type':'bash_20250124','name':'bash'},{'type':'text_editor_20250728','name':'str_replace_based_edit_tool'},"
            "{'type':'custom','name':'mcp__claude_ai_Atlassian_Confluence__getConfluencePageFooterCommentsWithReplies',"
            "'description':'d','input_schema':{'type':'object','properties':{}},'defer_loading':true},"
            "{'type':'tool_search_tool_regex_20251119','name':'tool_search_tool_regex'},{'type':'memory_20250818','name':"
            "'memory'},{'type':'code_execution_20250825','name':'code_execution'},{'type':'computer_20250124','name':'computer',"
            "'display_width_px':1}]}"),
        HEAD "],'tools':[{'type':'function','function':{'name':'NoSchema','description':'','parameters':{'type':'object',"
             "'properties':{}}}},{'type':'function','function':{'name':"
             "'mcp__claude_ai_Atlassian_Confluence__getConfluencePageF_2b1e792c','description':'d','parameters':{'type':"
             "'object','properties':{}}}}]}");
    is_int(last_res.toolnames.num_entries, 2);
    size_t olen;
    const char *o = pgw_toolnames_original(&last_res.toolnames,
                                           H2O_STRLIT("mcp__claude_ai_Atlassian_Confluence__getConfluencePageF_2b1e792c"), &olen);
    is_str(o, "mcp__claude_ai_Atlassian_Confluence__getConfluencePageFooterCommentsWithReplies");
    /* only server tools: no tools, no tool_choice, no parallel_tool_calls */
    is_json(run("{'messages':[],'tools':[{'type':'web_fetch_20250910','name':'web_fetch'}],'tool_choice':{'type':'any',"
                "'disable_parallel_tool_use':true}}"),
            HEAD "]}");
    /* a tool listed twice: the first one */
    is_json(run("{'messages':[],'tools':[{'name':'A','description':'1'},{'name':'A','description':'2'}]}"),
            HEAD "],'tools':[{'type':'function','function':{'name':'A','description':'1','parameters':{'type':'object','properties'"
                 ":{}}}}]}");
    /* minimal schema: type, properties, required (and items) only */
    pgw_translate_opts_t opts = {"bot", NULL, NULL, 0, 1};
    is_json(run_opts("{'messages':[],'tools':[{'name':'T','input_schema':{'$schema':'s','type':'object','description':'d',"
                     "'properties':{'a':{'type':'array','items':{'type':'string','minLength':1},'description':'x'},'b':{'anyOf':"
                     "[{'type':'string'}]}},'required':['a'],'additionalProperties':false}}]}",
                     &opts),
            HEAD "],'tools':[{'type':'function','function':{'name':'T','description':'','parameters':{'type':'object',"
                 "'properties':{'a':{'type':'array','items':{'type':'string'}},'b':{}},'required':['a']}}}]}");
}

static void test_tool_choice(void)
{
    const char *tools = "'tools':[{'name':'mcp.x/read','input_schema':{'type':'object'}},{'name':'web_search','type':"
                        "'web_search_20250305'}]";
    char body[1024];
#define CHOICE(choice, expected)                                                                                                   \
    do {                                                                                                                           \
        snprintf(body, sizeof(body), "{'messages':[],%s,'tool_choice':%s}", tools, choice);                                        \
        is_json(run(body), HEAD "],'tools':[{'type':'function','function':{'name':'mcp_x_read','description':'','parameters':"     \
                                "{'type':'object'}}}]" expected "}");                                                              \
    } while (0)
    CHOICE("{'type':'auto'}", ",'tool_choice':'auto'");
    CHOICE("{'type':'any'}", ",'tool_choice':'required'");
    CHOICE("{'type':'none'}", ",'tool_choice':'none'");
    CHOICE("{'type':'tool','name':'mcp.x/read'}", ",'tool_choice':{'type':'function','function':{'name':'mcp_x_read'}}");
    CHOICE("{'type':'tool','name':'web_search'}", ",'tool_choice':'auto'");
    CHOICE("{'type':'any','disable_parallel_tool_use':true}", ",'tool_choice':'required','parallel_tool_calls':false");
    CHOICE("{'type':'auto','disable_parallel_tool_use':false}", ",'tool_choice':'auto'");
#undef CHOICE
}

static void test_collisions(void)
{
    /* history before tools: the plain mapping is written, then replaced when tools show a collision
     * (docs/mapping.md#tool-names) */
    is_json(run("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'1','name':'a.b','input':{}},{'type':"
                "'tool_use','id':'2','name':'a_b','input':{}},{'type':'tool_use','id':'3','name':'c.d','input':{}}]}],"
                "'tools':[{'name':'a.b'},{'name':'a_b'},{'name':'c.d'}],'tool_choice':{'type':'tool','name':'a_b'}}"),
            HEAD "{'role':'assistant','content':null,'tool_calls':["
                 "{'id':'1','type':'function','function':{'name':'a_b_2e7336dc','arguments':'{}'}},"
                 "{'id':'2','type':'function','function':{'name':'a_b_648fa9b3','arguments':'{}'}},"
                 "{'id':'3','type':'function','function':{'name':'c_d','arguments':'{}'}}]},"
                 "{'role':'tool','tool_call_id':'1','content':'[tool call interrupted]'},"
                 "{'role':'tool','tool_call_id':'2','content':'[tool call interrupted]'},"
                 "{'role':'tool','tool_call_id':'3','content':'[tool call interrupted]'}],"
                 "'tools':[{'type':'function','function':{'name':'a_b_2e7336dc','description':'','parameters':{'type':'object',"
                 "'properties':{}}}},{'type':'function','function':{'name':'a_b_648fa9b3','description':'','parameters':{'type':"
                 "'object','properties':{}}}},{'type':'function','function':{'name':'c_d','description':'','parameters':{'type':"
                 "'object','properties':{}}}}],'tool_choice':{'type':'function','function':{'name':'a_b_648fa9b3'}}}");
}

/* Translates a body of `n` tools named t0, t1, ...; returns 0 or -1 with the message in `err`. */
static int run_tools(size_t n, pgw_translated_t *res, char *err, size_t errsz)
{
    h2o_buffer_t *in, *out;
    char tool[64];
    h2o_buffer_init(&in, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_buf_append_lit(&in, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[");
    for (size_t i = 0; i != n; ++i) {
        int len = snprintf(tool, sizeof(tool), "%s{\"name\":\"t%zu\"}", i == 0 ? "" : ",", i);
        pgw_buf_append(&in, tool, len);
    }
    pgw_buf_append_lit(&in, "]}");
    pgw_translate_opts_t opts = {"bot"};
    int ret = pgw_translate_request(in->bytes, in->size, &opts, &out, res, err, errsz);
    h2o_buffer_dispose(&in);
    h2o_buffer_dispose(&out);
    return ret;
}

static void test_tool_limit(void)
{
    pgw_translated_t res;
    char err[512];

    is_int(run_tools(PGW_TRANSLATE_MAX_TOOLS, &res, err, sizeof(err)), 0);
    is_int(res.toolnames.num_entries, PGW_TRANSLATE_MAX_TOOLS);
    pgw_translated_dispose(&res);
    is_int(run_tools(PGW_TRANSLATE_MAX_TOOLS + 1, &res, err, sizeof(err)), -1);
    is_str(err, "tools: more than 4096 tools; the gateway accepts at most 4096 per request");
    pgw_translated_dispose(&res);
}

/* ---- thinking knobs (docs/mapping.md#thinking-and-effort) ---- */

static char *sonnet_efforts[] = {"none", "low", "medium", "high", "max"};
static char *gpt5_efforts[] = {"minimal", "low", "medium", "high"};
static char *opus45_efforts[] = {"low", "medium", "high"};
static pgw_knob_t sonnet45_knobs[] = {{"thinking_budget", PGW_KNOB_INTEGER, 0, 31999}, {"web_search", PGW_KNOB_BOOLEAN}};
static pgw_knob_t opus45_knobs[] = {{"thinking_budget", PGW_KNOB_INTEGER, 0, 63999},
                                    {"output_effort", PGW_KNOB_ENUM, 0, 0, opus45_efforts, 3}};
static pgw_knob_t sonnet46_knobs[] = {{"output_effort", PGW_KNOB_ENUM, 0, 0, sonnet_efforts, 5}};
static pgw_knob_t gpt5_knobs[] = {{"reasoning_effort", PGW_KNOB_ENUM, 0, 0, gpt5_efforts, 4}};
static pgw_knob_t kimi_knobs[] = {{"enable_thinking", PGW_KNOB_BOOLEAN}, {"thinking_budget", PGW_KNOB_INTEGER, 1024, LLONG_MAX}};
static pgw_bot_t sonnet45 = {"claude-sonnet-4.5", 32768, sonnet45_knobs, 2};
static pgw_bot_t opus45 = {"claude-opus-4.5", 64000, opus45_knobs, 2};
static pgw_bot_t sonnet46 = {"claude-sonnet-4.6", 128000, sonnet46_knobs, 1};
static pgw_bot_t gpt5 = {"gpt-5", 0, gpt5_knobs, 1};
static pgw_bot_t kimi = {"kimi-k2", 0, kimi_knobs, 2};

static const char *knobs_for(pgw_bot_t *bot, const char *extra_body, const char *fields)
{
    static char body[512];
    static const char *tail;
    pgw_extra_body_t *x = extra_body != NULL ? pgw_extra_body_parse(extra_body, strlen(extra_body)) : NULL;
    pgw_translate_opts_t opts = {"bot", bot, x};
    snprintf(body, sizeof(body), "{'messages':[]%s}", fields);
    const char *out = run_opts(body, &opts);
    free(x);
    /* what follows the messages */
    tail = strstr(out, "\"messages\":[]");
    return tail != NULL ? tail + 13 : out;
}

static void test_knobs(void)
{
    /* enabled with a budget */
    is_json(
        knobs_for(&sonnet45, NULL, ",'max_tokens':32000,'thinking':{'type':'enabled','budget_tokens':31999,'display':'omitted'}"),
        ",'max_tokens':32000,'thinking_budget':31999}");
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':64000,'thinking':{'type':'enabled','budget_tokens':50000}"),
            ",'max_tokens':32768,'thinking_budget':31999}");
    is_int(last_res.max_tokens, 32768);
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':4000,'thinking':{'type':'enabled','budget_tokens':10000}"),
            ",'max_tokens':4000,'thinking_budget':3999}");
    /* the max_tokens: 1 probe */
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':1,'thinking':{'type':'enabled','budget_tokens':1024}"),
            ",'max_tokens':1,'thinking_budget':0}");
    is_json(knobs_for(&kimi, NULL, ",'max_tokens':1,'thinking':{'type':'enabled','budget_tokens':2048}"),
            ",'max_tokens':1,'enable_thinking':true}");
    is_json(knobs_for(&gpt5, NULL, ",'thinking':{'type':'enabled','budget_tokens':31999}"), ",'reasoning_effort':'high'}");
    is_json(knobs_for(&gpt5, NULL, ",'thinking':{'type':'enabled','budget_tokens':500}"), ",'reasoning_effort':'minimal'}");
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'enabled','budget_tokens':5000}"), ",'output_effort':'high'}");
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'enabled','budget_tokens':100}"), ",'output_effort':'low'}");
    is_json(knobs_for(&opus45, NULL, ",'thinking':{'type':'enabled','budget_tokens':5000}"), ",'thinking_budget':5000}");
    is_json(knobs_for(&kimi, NULL, ",'thinking':{'type':'enabled','budget_tokens':5000}"),
            ",'enable_thinking':true,'thinking_budget':5000}");
    /* adaptive with an effort */
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'max'}"),
            ",'output_effort':'max'}");
    is_json(knobs_for(&opus45, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'max'}"),
            ",'output_effort':'high'}");
    is_json(knobs_for(&gpt5, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'xhigh'}"),
            ",'reasoning_effort':'high'}");
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'minimal'}"),
            ",'output_effort':'low'}");
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':32000,'thinking':{'type':'adaptive'},'output_config':{'effort':'low'}"),
            ",'max_tokens':32000,'thinking_budget':2048}");
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':32000,'thinking':{'type':'adaptive'},'output_config':{'effort':'high'}"),
            ",'max_tokens':32000,'thinking_budget':16384}");
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':10000,'thinking':{'type':'adaptive'},'output_config':{'effort':'max'}"),
            ",'max_tokens':10000,'thinking_budget':9999}");
    is_json(knobs_for(&kimi, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'max'}"),
            ",'enable_thinking':true,'thinking_budget':32768}");
    /* adaptive without an effort: budget(medium), or the model's default effort */
    is_json(knobs_for(&sonnet45, NULL, ",'max_tokens':32000,'thinking':{'type':'adaptive','display':'omitted'}"),
            ",'max_tokens':32000,'thinking_budget':8192}");
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'adaptive'}"), "}");
    is_json(knobs_for(&gpt5, NULL, ",'thinking':{'type':'adaptive'},'output_config':{'effort':'bogus'}"), "}");
    /* thinking off, absent or unknown: nothing, even with an effort */
    is_json(knobs_for(&sonnet46, NULL, ",'thinking':{'type':'disabled'},'output_config':{'effort':'high'}"), "}");
    is_json(knobs_for(&sonnet46, NULL, ",'output_config':{'effort':'high'}"), "}");
    is_json(knobs_for(&kimi, NULL, ",'thinking':{'type':'whatever'}"), "}");
    /* no catalog entry: no knobs */
    is_json(knobs_for(NULL, NULL, ",'thinking':{'type':'enabled','budget_tokens':5000}"), "}");
    /* a budget below the model's least is not sent */
    is_json(knobs_for(&kimi, NULL, ",'max_tokens':500,'thinking':{'type':'enabled','budget_tokens':5000}"),
            ",'max_tokens':500,'enable_thinking':true}");

    /* extra_body: added at the top level, winning over computed knobs and fields, never over the translation's own */
    is_json(knobs_for(&sonnet45, "\"thinking_budget\":4096, \"web_search\" : true,\"nested\":{\"a\":[1,2.50]},\"stream\":false",
                      ",'max_tokens':32000,'thinking':{'type':'enabled','budget_tokens':31999}"),
            ",'max_tokens':32000,'thinking_budget':4096,'web_search':true,'nested':{'a':[1,2.50]}}");
    is_json(knobs_for(NULL, "\"temperature\":0.2,\"max_tokens\":100", ",'max_tokens':32000,'temperature':1"),
            ",'temperature':0.2,'max_tokens':100}");
    is_json(knobs_for(NULL, "\"s\":\"a\\\"b\"", ""), ",'s':'a\\'b'}");
}

/* ---- errors and limits ---- */

static void test_errors(void)
{
    static const struct {
        const char *body, *error;
    } cases[] = {
        {"", "request body is empty; expected a JSON object"},
        {"{'messages':[}", "request body is not valid JSON"},
        {"{'messages':[]} x", "request body is not valid JSON"},
        {"[]", "request body must be a JSON object"},
        {"'text'", "request body must be a JSON object"},
        {"{}", "messages: required"},
        {"{'messages':{}}", "messages: expected an array"},
        {"{'messages':null}", "messages: expected an array"},
        {"{'messages':[1]}", "messages.0: expected an object"},
        {"{'messages':[{'role':'user','content':'a'},{'role':'user','content':5}]}",
         "messages.1.content: expected a string or an array"},
        {"{'messages':[{'role':'user'}]}", "messages.0.content: required"},
        {"{'messages':[{'content':'x'}]}", "messages.0.role: required"},
        {"{'messages':[{'role':'tool','content':'x'}]}", "messages.0.role: expected \"user\", \"assistant\" or \"system\""},
        {"{'messages':[{'role':1,'content':'x'}]}", "messages.0.role: expected a string"},
        /* a second role or content is refused: the first one's translation would be re-read under the second */
        {"{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':{}}],'role':'user'}]}",
         "messages.0.role: given twice"},
        {"{'messages':[{'role':'user','role':'user','content':'x'}]}", "messages.0.role: given twice"},
        {"{'messages':[{'role':'user','content':'x','content':[{'type':'text','text':'y'}]}]}", "messages.0.content: given twice"},
        {"{'messages':[{'content':[{'type':'text','text':'y'}],'content':'x','role':'user'}]}", "messages.0.content: given twice"},
        {"{'messages':[{'role':'user','content':[{'type':'text','text':'a'},'b']}]}", "messages.0.content.1: expected an object"},
        {"{'messages':[{'role':'user','content':[{'text':'a'}]}]}", "messages.0.content.0.type: required"},
        {"{'messages':[{'role':'user','content':[{'type':7}]}]}", "messages.0.content.0.type: expected a string"},
        {"{'messages':[{'role':'user','content':[{'type':'text','text':['a']}]}]}", "messages.0.content.0.text: expected a string"},
        {"{'messages':[{'role':'user','content':[{'type':'text'}]}]}", "messages.0.content.0.text: required"},
        {"{'messages':[{'role':'assistant','content':[{'type':'tool_use','name':'T'}]}]}", "messages.0.content.0.id: required"},
        {"{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':'{}'}]}]}",
         "messages.0.content.0.input: expected an object"},
        {"{'messages':[{'role':'user','content':[{'type':'tool_result','content':'x'}]}]}",
         "messages.0.content.0.tool_use_id: required"},
        {"{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'a','is_error':'yes'}]}]}",
         "messages.0.content.0.is_error: expected a boolean"},
        {"{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'a','content':[{'type':'image'}]}]}]}",
         "messages.0.content.0.content.0.source: required"},
        {"{'messages':[{'role':'user','content':[{'type':'tool_result','tool_use_id':'a','content':[{'type':'image','source':"
         "{'type':'base64','media_type':'image/png'}}]}]}]}",
         "messages.0.content.0.content.0.source.data: required"},
        {"{'messages':[{'role':'user','content':[{'type':'image','source':'x'}]}]}", "messages.0.content.0.source: required"},
        {"{'messages':[{'role':'user','content':[{'type':'image','source':[]}]}]}",
         "messages.0.content.0.source: expected an object"},
        {"{'messages':[{'role':'user','content':[{'type':'document','source':{'type':'text'}}]}]}",
         "messages.0.content.0.source.data: required"},
        {"{'messages':[],'system':5}", "system: expected a string or an array"},
        {"{'messages':[],'system':[{'text':'a'}]}", "system.0.type: required"},
        {"{'messages':[],'system':['a']}", "system.0: expected an object"},
        {"{'messages':[],'tools':{}}", "tools: expected an array"},
        {"{'messages':[],'tools':[{'name':'a'},5]}", "tools.1: expected an object"},
        {"{'messages':[],'tools':[{'description':'a'}]}", "tools.0.name: required"},
        {"{'messages':[],'tools':[{'name':'a','input_schema':'x'}]}", "tools.0.input_schema: expected an object"},
        {"{'messages':[],'tool_choice':'auto'}", "tool_choice: expected an object"},
        {"{'messages':[],'tool_choice':{'type':'sometimes'}}",
         "tool_choice.type: expected \"auto\", \"any\", \"tool\" or \"none\""},
        {"{'messages':[],'tool_choice':{'type':'tool'}}", "tool_choice.name: required"},
        {"{'messages':[],'tool_choice':{}}", "tool_choice.type: required"},
        {"{'messages':[],'max_tokens':'5'}", "max_tokens: expected an integer"},
        {"{'messages':[],'max_tokens':1.5}", "max_tokens: expected an integer"},
        {"{'messages':[],'max_tokens':0}", "max_tokens: must be at least 1"},
        {"{'messages':[],'temperature':'hot'}", "temperature: expected a number"},
        {"{'messages':[],'stream':'yes'}", "stream: expected a boolean"},
        {"{'messages':[],'stop_sequences':'END'}", "stop_sequences: expected an array of strings"},
        {"{'messages':[],'stop_sequences':['a',1]}", "stop_sequences.1: expected a string"},
        {"{'messages':[],'thinking':true}", "thinking: expected an object"},
        {"{'messages':[],'thinking':{'type':'enabled','budget_tokens':'1024'}}", "thinking.budget_tokens: expected an integer"},
        {"{'messages':[],'output_config':[]}", "output_config: expected an object"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *got = run(cases[i].body);
        int good = strncmp(got, "ERROR: ", 7) == 0 && strncmp(got + 7, cases[i].error, strlen(cases[i].error)) == 0;
        ok(good);
        if (!good)
            note("%s -> %s (expected %s)", cases[i].body, got, cases[i].error);
    }
    /* invalid UTF-8 is refused by the parser */
    char err[256];
    h2o_buffer_t *out;
    pgw_translated_t res;
    pgw_translate_opts_t opts = {"bot"};
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    is_int(pgw_translate_request(H2O_STRLIT("{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}"), &opts, &out, &res, err,
                                 sizeof(err)),
           -1);
    ok(strncmp(err, "request body is not valid JSON", 30) == 0);
    is_int(out->size, 0); /* nothing appended on failure */
    pgw_translated_dispose(&res);
    /* a failure after tools were read: res still disposable */
    is_int(pgw_translate_request(H2O_STRLIT("{\"tools\":[{\"name\":\"a\"}],\"messages\":5}"), &opts, &out, &res, err, sizeof(err)),
           -1);
    is_str(err, "messages: expected an array");
    pgw_translated_dispose(&res);
    /* a small error buffer truncates */
    char tiny[8];
    is_int(pgw_translate_request(H2O_STRLIT("{\"messages\":5}"), &opts, &out, &res, tiny, sizeof(tiny)), -1);
    is_str(tiny, "message");
    pgw_translated_dispose(&res);
    h2o_buffer_dispose(&out);
}

/* prefix, `depth` times open, middle, `depth` times close, suffix */
static char *nested(const char *prefix, int depth, const char *open, const char *middle, const char *close, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(middle) + strlen(suffix) + depth * (strlen(open) + strlen(close)) + 1;
    char *s = malloc(n), *p = s;
    p += sprintf(p, "%s", prefix);
    for (int i = 0; i != depth; ++i)
        p += sprintf(p, "%s", open);
    p += sprintf(p, "%s", middle);
    for (int i = 0; i != depth; ++i)
        p += sprintf(p, "%s", close);
    sprintf(p, "%s", suffix);
    return s;
}

static void test_depth(void)
{
    /* deep nesting is refused with a 400, without recursion anywhere */
    char *body = nested("{'metadata':", 100000, "[", "", "]", ",'messages':[]}");
    is_str(run(body), "ERROR: request body nests deeper than 512 levels");
    free(body);
    body = nested("{'messages':[],'tools':[{'name':'T','input_schema':", 600, "{'a':", "1", "}", "}]}");
    is_str(run(body), "ERROR: request body nests deeper than 512 levels");
    free(body);
    /* 500 levels inside a tool input are copied through */
    body = nested("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':{'x':", 500, "[", "",
                  "]", "}}]}]}");
    const char *out = run(body);
    ok(strncmp(out, "ERROR", 5) != 0);
    char *args = nested("{\\\"x\\\":", 500, "[", "", "]", "}");
    ok(strstr(out, args) != NULL);
    free(args);
    free(body);
    /* and inside a schema */
    body = nested("{'messages':[],'tools':[{'name':'T','input_schema':{'type':'object','properties':{'p':{'type':'array','items':",
                  200, "{'type':'array','items':", "{'$comment':'deep'}", "}", "}}}}]}");
    out = run(body);
    ok(strncmp(out, "ERROR", 5) != 0);
    ok(strstr(out, "{\"type\":\"array\",\"items\":{}}") != NULL); /* cleaned at depth 200 too */
    free(body);
}

static void test_estimate(void)
{
    /* "Hello" (5 bytes) and "Be nice." (8): their shape, 20 + 47 twelfths, is 6 tokens, more than ceil(13 / 3); + 2
     * messages */
    run("{'system':'Be nice.','messages':[{'role':'user','content':'Hello'}]}");
    is_int(last_res.input_tokens, 6 + 8);
    /* a tool: name + its JSON (description and parameters) + 8; arguments count as text */
    run("{'messages':[{'role':'assistant','content':[{'type':'tool_use','id':'a','name':'T','input':{'k':'v'}}]}],"
        "'tools':[{'name':'T'}]}");
    size_t frag = strlen(",\"description\":\"\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}");
    /* the tool's JSON is mostly punctuation, a token each: its shape (58 tokens) outweighs the bytes / 3 */
    ok(last_res.input_tokens >= (long long)(1 + 1 + 9 + 1 + frag + 1 + strlen("[tool call interrupted]") + 2) / 3 + 2 * 4 + 8);
    is_int(last_res.input_tokens, 58 + 2 * 4 + 8);
    /* base64 is never text: an image is 1,500 whatever its size */
    char *big = malloc(300000);
    strcpy(big,
           "{'messages':[{'role':'user','content':[{'type':'image','source':{'type':'base64','media_type':'image/png','data':'");
    size_t n = strlen(big);
    memset(big + n, 'A', 200000);
    strcpy(big + n + 200000, "'}}]}]}");
    run(big);
    is_int(last_res.input_tokens, 1500 + 4);
    free(big);
}

/* ---- golden cases: t/assets/cases/NNN-name/{anthropic.json, options.json, openai.json} ---- */

static const char *tree_str(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val x = yajl_tree_get(v, path, yajl_t_string);
    return x != NULL ? YAJL_GET_STRING(x) : NULL;
}

static long long tree_int(yajl_val v, const char *key, long long dflt)
{
    const char *path[] = {key, NULL};
    yajl_val x = yajl_tree_get(v, path, yajl_t_number);
    return x != NULL ? YAJL_GET_INTEGER(x) : dflt;
}

static int tree_bool(yajl_val v, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val x = yajl_tree_get(v, path, yajl_t_any);
    return x != NULL && YAJL_IS_TRUE(x);
}

/*
 * options.json (optional): {"upstream_model", "echo_reasoning", "minimal_schema", "extra_body" (a string: members without
 * braces), "bot": {"id", "max_output_tokens", "knobs": [{"name", "type": "integer"|"boolean"|"enum", "min", "max",
 * "values"}]}, "expect": {"input_tokens", "max_tokens", "stream"}}. openai.json is compared after both sides are
 * re-generated by yajl (whitespace ignored; key order, number literals and string contents compared exactly).
 * PGW_UPDATE_CASE=NNN-name rewrites that case's openai.json from the current output instead (review the diff).
 */
static void run_case(const char *dir)
{
    char path[1024], errbuf[512];
    size_t in_len, opt_len = 0, exp_len;
    snprintf(path, sizeof(path), "%s/anthropic.json", dir);
    char *in = read_whole_file(path, &in_len);
    snprintf(path, sizeof(path), "%s/options.json", dir);
    char *opt_text = read_whole_file(path, &opt_len);
    snprintf(path, sizeof(path), "%s/openai.json", dir);
    char *expected = read_whole_file(path, &exp_len);
    yajl_val optv = NULL;
    pgw_bot_t bot = {NULL};
    pgw_extra_body_t *extra = NULL;
    pgw_translate_opts_t opts = {"bot"};

    if (opt_text != NULL) {
        optv = yajl_tree_parse(opt_text, errbuf, sizeof(errbuf));
        ok(optv != NULL);
        if (optv == NULL)
            goto Exit;
        if (tree_str(optv, "upstream_model") != NULL)
            opts.upstream_model = tree_str(optv, "upstream_model");
        if (tree_str(optv, "extra_body") != NULL) {
            extra = pgw_extra_body_parse(tree_str(optv, "extra_body"), strlen(tree_str(optv, "extra_body")));
            ok(extra != NULL);
            opts.extra_body = extra;
        }
        opts.echo_reasoning = tree_bool(optv, "echo_reasoning");
        opts.minimal_schema = tree_bool(optv, "minimal_schema");
        const char *bot_path[] = {"bot", NULL};
        yajl_val botv = yajl_tree_get(optv, bot_path, yajl_t_object);
        if (botv != NULL) {
            bot.id = (char *)tree_str(botv, "id");
            bot.max_output_tokens = tree_int(botv, "max_output_tokens", 0);
            const char *knobs_path[] = {"knobs", NULL};
            yajl_val knobs = yajl_tree_get(botv, knobs_path, yajl_t_array);
            size_t n = knobs != NULL ? YAJL_GET_ARRAY(knobs)->len : 0;
            bot.knobs = calloc(n + 1, sizeof(pgw_knob_t));
            for (size_t i = 0; i != n; ++i) {
                yajl_val k = YAJL_GET_ARRAY(knobs)->values[i];
                pgw_knob_t *kn = &bot.knobs[bot.num_knobs++];
                const char *type = tree_str(k, "type");
                kn->name = (char *)tree_str(k, "name");
                kn->type = strcmp(type, "integer") == 0   ? PGW_KNOB_INTEGER
                           : strcmp(type, "boolean") == 0 ? PGW_KNOB_BOOLEAN
                           : strcmp(type, "enum") == 0    ? PGW_KNOB_ENUM
                                                          : PGW_KNOB_OTHER;
                kn->min = tree_int(k, "min", LLONG_MIN);
                kn->max = tree_int(k, "max", LLONG_MAX);
                const char *values_path[] = {"values", NULL};
                yajl_val values = yajl_tree_get(k, values_path, yajl_t_array);
                if (values != NULL) {
                    kn->num_values = YAJL_GET_ARRAY(values)->len;
                    kn->values = calloc(kn->num_values, sizeof(char *));
                    for (size_t j = 0; j != kn->num_values; ++j)
                        kn->values[j] = YAJL_GET_STRING(YAJL_GET_ARRAY(values)->values[j]);
                }
            }
            opts.bot = &bot;
        }
    }

    ok(in != NULL);
    if (in == NULL)
        goto Exit;
    h2o_buffer_t *out;
    pgw_translated_t res;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    both_ways(in, in_len, &opts);
    int ret = pgw_translate_request(in, in_len, &opts, &out, &res, errbuf, sizeof(errbuf));
    is_int(ret, 0);
    if (ret != 0)
        note("%s: %s", dir, errbuf);
    char *got = reformat(out->bytes, out->size, 0);
    ok(got != NULL); /* the output is valid JSON */
    const char *update = getenv("PGW_UPDATE_CASE");
    if (update != NULL && strcmp(update, strrchr(dir, '/') + 1) == 0 && got != NULL) {
        char *pretty = reformat(out->bytes, out->size, 1);
        FILE *fp = fopen(path, "wb");
        fputs(pretty, fp);
        fclose(fp);
        free(pretty);
        note("%s: openai.json rewritten", dir);
    } else {
        char *want = expected != NULL ? reformat(expected, exp_len, 0) : NULL;
        ok(want != NULL);
        int same = got != NULL && want != NULL && strcmp(got, want) == 0;
        ok(same);
        if (!same && got != NULL) {
            snprintf(path, sizeof(path), "/tmp/pgw-case-%s.json", strrchr(dir, '/') + 1);
            FILE *fp = fopen(path, "wb");
            char *pretty = reformat(out->bytes, out->size, 1);
            fputs(pretty, fp);
            fclose(fp);
            free(pretty);
            note("%s differs from openai.json; the output is in %s", dir, path);
        }
        free(want);
    }
    if (optv != NULL) {
        const char *expect_path[] = {"expect", NULL};
        yajl_val expect = yajl_tree_get(optv, expect_path, yajl_t_object);
        if (expect != NULL) {
            long long v;
            if ((v = tree_int(expect, "input_tokens", -1)) != -1)
                is_int(res.input_tokens, v);
            if ((v = tree_int(expect, "max_tokens", -1)) != -1)
                is_int(res.max_tokens, v);
            is_int(res.stream, tree_bool(expect, "stream"));
            is_int(res.web_search, tree_bool(expect, "web_search"));
            is_str(res.refused_tool, tree_str(expect, "refused_tool") != NULL ? tree_str(expect, "refused_tool") : "");
        }
    }
    free(got);
    pgw_translated_dispose(&res);
    h2o_buffer_dispose(&out);

Exit:
    for (size_t i = 0; i != bot.num_knobs; ++i)
        free(bot.knobs[i].values);
    free(bot.knobs);
    free(extra);
    if (optv != NULL)
        yajl_tree_free(optv);
    free(in);
    free(opt_text);
    free(expected);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void test_cases(void)
{
    struct dirent **list;
    int n = scandir("t/assets/cases", &list, NULL, by_name), ran = 0;
    ok(n > 0);
    for (int i = 0; i < n; ++i) {
        char dir[512], path[600];
        struct stat st;
        snprintf(dir, sizeof(dir), "t/assets/cases/%s", list[i]->d_name);
        snprintf(path, sizeof(path), "%s/anthropic.json", dir);
        int has_in = stat(path, &st) == 0;
        snprintf(path, sizeof(path), "%s/openai.json", dir);
        /* cases of the other translators have other files */
        if (list[i]->d_name[0] != '.' && has_in && stat(path, &st) == 0) {
            note("case %s", list[i]->d_name);
            run_case(dir);
            ++ran;
        }
        free(list[i]);
    }
    free(list);
    ok(ran >= 4);
}

/* ---- robustness: damaged versions of the big case never crash, and every success is valid JSON ---- */

static void test_mutations(void)
{
    size_t len;
    char *orig = read_whole_file("t/assets/cases/101-claude-code-turn/anthropic.json", &len), err[512];
    ok(orig != NULL);
    if (orig == NULL)
        return;
    char *body = malloc(len);
    pgw_extra_body_t *extra = pgw_extra_body_parse(H2O_STRLIT("\"web_search\":false"));
    pgw_translate_opts_t opts = {"claude-sonnet-4.5", &sonnet45, extra, 1, 0};
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    int runs = 0, successes = 0, invalid = 0;
    unsigned seed = 12345;

    for (int i = 0; i != 1500; ++i) {
        size_t n = len;
        memcpy(body, orig, len);
        if (i < 500) {
            /* truncated */
            n = (size_t)i * len / 500;
        } else {
            /* a few bytes replaced by JSON punctuation or letters */
            static const char alphabet[] = "{}[]\",:0-1.e\\ atnul";
            for (int k = 0; k != 1 + i % 4; ++k) {
                seed = seed * 1103515245 + 12345;
                size_t at = (seed >> 8) % len;
                seed = seed * 1103515245 + 12345;
                body[at] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
            }
        }
        pgw_translated_t res;
        out->size = 0;
        both_ways(body, n, &opts);
        if (pgw_translate_request(body, n, &opts, &out, &res, err, sizeof(err)) == 0) {
            char *r = reformat(out->bytes, out->size, 0);
            invalid += r == NULL;
            free(r);
            ++successes;
        } else {
            invalid += err[0] == '\0'; /* a failure always says why */
        }
        pgw_translated_dispose(&res);
        ++runs;
    }
    is_int(runs, 1500);
    is_int(invalid, 0);
    ok(successes > 100);
    note("%d of %d damaged requests still translated", successes, runs);
    h2o_buffer_dispose(&out);
    free(extra);
    free(body);
    free(orig);
}

/* ---- speed: a Claude Code-sized request (about 50 KB), for the record ---- */

static void test_speed(void)
{
    size_t len;
    char *body = read_whole_file("t/assets/cases/101-claude-code-turn/anthropic.json", &len);
    ok(body != NULL);
    if (body == NULL)
        return;
    pgw_translate_opts_t opts = {"claude-sonnet-4.5", &sonnet45};
    h2o_buffer_t *out;
    char err[256];
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    struct timespec t0, t1;
    int iterations = 2000, failures = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i != iterations; ++i) {
        pgw_translated_t res;
        out->size = 0;
        failures += pgw_translate_request(body, len, &opts, &out, &res, err, sizeof(err)) != 0;
        pgw_translated_dispose(&res);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    is_int(failures, 0);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / iterations;
    note("%zu-byte request -> %zu bytes: %.1f us per translation", len, out->size, us);
    h2o_buffer_dispose(&out);
    free(body);
}

void test_src__translate_request_c(void)
{
    subtest("basics", test_basics);
    subtest("surrogates", test_surrogates);
    subtest("unknown types", test_unknown_types);
    subtest("system", test_system);
    subtest("user blocks", test_user_blocks);
    subtest("tool turns", test_tool_turns);
    subtest("thinking history", test_thinking_history);
    subtest("system role", test_system_role);
    subtest("key order", test_key_order);
    subtest("tools", test_tools);
    subtest("tool_choice", test_tool_choice);
    subtest("collisions", test_collisions);
    subtest("tool limit", test_tool_limit);
    subtest("knobs", test_knobs);
    subtest("errors", test_errors);
    subtest("depth", test_depth);
    subtest("estimate", test_estimate);
    subtest("cases", test_cases);
    subtest("mutations", test_mutations);
    subtest("speed", test_speed);
    free(last_output);
    last_output = NULL;
    pgw_translated_dispose(&last_res);
    subtest("pgw_json_read and yajl", test_reader);
}
