/* poe-gateway: MIT licence. Unit tests for src/translate/translate_messages.c: the chat/completions messages of a translated
 * request (docs/mapping.md#messages), fed block by block as the request translator feeds them. Whole requests are tested
 * in translate_request.c. */
#include <h2o/socket.h>
#include "../../../../src/translate/translate_messages.c"
#include "../../test.h"

static pgw_estimate_t est;
static int where_calls;

static size_t where(void *ctx, char *buf, size_t size)
{
    ++where_calls;
    return snprintf(buf, size, "%s", (const char *)ctx);
}

static h2o_iovec_t S(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

/* a block with only a type, and buffers for its content */
static pgw_block_t *block(const char *type)
{
    static pgw_block_t blocks[4];
    static size_t next;
    pgw_block_t *b = &blocks[next++ % 4];
    h2o_buffer_t *joined = b->joined, *attach = b->attach;
    memset(b, 0, sizeof(*b));
    b->joined = joined;
    b->attach = attach;
    if (b->joined == NULL) {
        h2o_buffer_init(&b->joined, &h2o_socket_buffer_prototype);
        h2o_buffer_init(&b->attach, &h2o_socket_buffer_prototype);
    }
    b->joined->size = 0;
    b->attach->size = 0;
    b->type = S(type);
    return b;
}

static pgw_messages_t *start(int echo_reasoning)
{
    memset(&est, 0, sizeof(est));
    where_calls = 0;
    return pgw_messages_create(echo_reasoning, &est, where, "messages.0.content.0: ");
}

/* Writes the messages and destroys `m`; returns what was written, with ' for " */
static const char *finish(pgw_messages_t *m, const pgw_toolnames_t *names)
{
    static char result[2048];
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_messages_write(m, names, &out);
    snprintf(result, sizeof(result), "%.*s", (int)out->size, out->bytes);
    for (char *p = result; *p != '\0'; ++p)
        if (*p == '"')
            *p = '\'';
    h2o_buffer_dispose(&out);
    pgw_messages_destroy(m);
    return result;
}

static void test_turns(void)
{
    const char *missing = NULL;
    pgw_messages_t *m = start(0);

    /* system text first, the attribution line removed */
    pgw_messages_system(m, H2O_STRLIT("x-anthropic-billing-header: cc_version=2\nBe brief."));
    pgw_messages_system(m, H2O_STRLIT("  "));
    pgw_messages_system(m, H2O_STRLIT("Be kind."));
    /* a user string */
    pgw_messages_begin(m);
    pgw_messages_text(m, PGW_ROLE_USER, H2O_STRLIT("hi"));
    pgw_messages_end(m, PGW_ROLE_USER);
    /* an assistant turn with text and two calls */
    pgw_messages_begin(m);
    pgw_block_t *b = block("text");
    b->text = S("Reading.");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), 0);
    b = block("tool_use");
    b->id = S("call_1");
    b->name = S("Read");
    b->input = S("{\"path\": 1.50}");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), 0);
    b = block("tool_use");
    b->id = S("call_2");
    b->name = S("mcp.x/read");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), 0);
    pgw_messages_end(m, PGW_ROLE_ASSISTANT);
    /* a system-role message waits until the results are out */
    pgw_messages_begin(m);
    pgw_messages_text(m, PGW_ROLE_SYSTEM, H2O_STRLIT("Note this."));
    pgw_messages_end(m, PGW_ROLE_SYSTEM);
    /* the user answers the first call, an unknown one, and says something */
    pgw_messages_begin(m);
    b = block("tool_result");
    b->tool_use_id = S("call_1");
    pgw_messages_block_text(b, H2O_STRLIT("file"));
    pgw_messages_block_text(b, H2O_STRLIT(" \n"));
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), 0);
    b = block("tool_result");
    b->tool_use_id = S("call_9");
    b->is_error = 1;
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), 0);
    b = block("text");
    b->text = S("thanks");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), 0);
    pgw_messages_end(m, PGW_ROLE_USER);
    pgw_messages_end_all(m);
    is_str(finish(m, NULL),
           "{'role':'system','content':'Be brief.\\n\\nBe kind.'},{'role':'user','content':'hi'},{'role':'assistant','content':"
           "'Reading.','tool_calls':[{'id':'call_1','type':'function','function':{'name':'Read','arguments':'{\\'path\\': 1.50}'}},"
           "{'id':'call_2','type':'function','function':{'name':'mcp_x_read','arguments':'{}'}}]},{'role':'tool','tool_call_id':"
           "'call_1','content':'file'},{'role':'tool','tool_call_id':'call_2','content':'[tool call interrupted]'},{'role':'user',"
           "'content':'[system note] Note this.'},{'role':'user','content':[{'type':'text','text':'[tool error] (no output)'},"
           "{'type':'text','text':'thanks'}]}");
    /* counted: 7 messages (the system one included) */
    is_int(est.num_messages, 7);
    ok(est.text_bytes > 0);
    is_int(where_calls, 0);
}

static void test_trailing_calls(void)
{
    const char *missing;
    pgw_messages_t *m = start(1);

    /* thinking echoed when the route asks; a turn of thinking only is dropped */
    pgw_messages_begin(m);
    pgw_block_t *b = block("thinking");
    b->thinking = S("hmm");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), 0);
    pgw_messages_end(m, PGW_ROLE_ASSISTANT);
    pgw_messages_begin(m);
    b = block("thinking");
    b->thinking = S("so");
    pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing);
    b = block("tool_use");
    b->id = S("a");
    b->name = S("T");
    pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing);
    pgw_messages_end(m, PGW_ROLE_ASSISTANT);
    /* the request ends on the calls: they are answered all the same */
    pgw_messages_end_all(m);
    is_str(finish(m, NULL), "{'role':'assistant','content':null,'reasoning_content':'so','tool_calls':[{'id':'a','type':'function',"
                            "'function':{'name':'T','arguments':'{}'}}]},{'role':'tool','tool_call_id':'a','content':'[tool call "
                            "interrupted]'}");
}

static void test_nested(void)
{
    const char *missing;
    pgw_messages_t *m = start(0);

    /* a tool_result holding an image and a PDF: text in the tool message, the parts after it in a user message */
    pgw_messages_begin(m);
    pgw_block_t *call = block("tool_use");
    call->id = S("c");
    call->name = S("Shot");
    pgw_messages_block(m, PGW_ROLE_ASSISTANT, call, NULL, &missing);
    pgw_messages_end(m, PGW_ROLE_ASSISTANT);
    pgw_messages_begin(m);
    pgw_block_t *result = block("tool_result");
    result->tool_use_id = S("c");
    pgw_block_t *b = block("image");
    b->has_source = 1;
    b->src_type = S("base64");
    b->src_media_type = S("image/png");
    b->src_data = S("AAAA");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, result, &missing), 0);
    b = block("document");
    b->has_source = 1;
    b->src_type = S("base64");
    b->src_data = S("JVBERi0x");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, result, &missing), 0);
    b = block("tool_reference");
    b->tool_name = S("Grep");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, result, &missing), 0);
    is_int(pgw_messages_block(m, PGW_ROLE_USER, result, NULL, &missing), 0);
    pgw_messages_end(m, PGW_ROLE_USER);
    is_str(finish(m, NULL),
           "{'role':'assistant','content':null,'tool_calls':[{'id':'c','type':'function','function':{'name':'Shot','arguments':"
           "'{}'}}]},{'role':'tool','tool_call_id':'c','content':'[image attached below]\\n[document attached below]\\n[Loaded "
           "tool: Grep]'},{'role':'user','content':[{'type':'image_url','image_url':{'url':'data:image/png;base64,AAAA'}},"
           "{'type':'file','file':{'filename':'doc.pdf','file_data':'data:application/pdf;base64,JVBERi0x'}}]}");
    is_int(est.num_images, 1);
    is_int(est.extra_tokens, 2000);
}

static void test_required(void)
{
    static const struct {
        const char *type;
        int source;
        const char *src_type, *missing;
    } cases[] = {
        {"text", 0, NULL, "text"},
        {"image", 0, NULL, "source"},
        {"image", 1, "base64", "source.media_type"},
        {"image", 1, "url", "source.url"},
        {"document", 1, "base64", "source.data"},
        {"document", 0, NULL, "source"},
        {"document", 1, "text", "source.data"},
        {"tool_result", 0, NULL, "tool_use_id"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        pgw_messages_t *m = start(0);
        const char *missing = NULL;
        pgw_block_t *b = block(cases[i].type);
        b->has_source = cases[i].source;
        b->src_type = S(cases[i].src_type);
        pgw_messages_begin(m);
        is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), -1);
        is_str(missing, cases[i].missing);
        pgw_messages_destroy(m);
    }
    pgw_messages_t *m = start(0);
    const char *missing = NULL;
    pgw_block_t *b = block("tool_use");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), -1);
    is_str(missing, "id");
    b = block("tool_use");
    b->id = S("x");
    is_int(pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing), -1);
    is_str(missing, "name");
    pgw_messages_destroy(m);
}

static void test_unknown_types(void)
{
    const char *missing;
    char log[1024];
    pgw_messages_t *m = start(0);

    stderr_capture_begin();
    pgw_messages_begin(m);
    pgw_block_t *b = block("hologram");
    b->text = S("seen");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), 0);
    b = block("widget");
    is_int(pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing), 0);
    /* known types, thinking and tool families are not unknown */
    b = block("container_upload");
    pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing);
    b = block("web_search_tool_result");
    b->text = S("not sent");
    pgw_messages_block(m, PGW_ROLE_USER, b, NULL, &missing);
    pgw_messages_end(m, PGW_ROLE_USER);
    const char *written = finish(m, NULL);
    stderr_capture_end(log, sizeof(log));
    is_str(written, "{'role':'user','content':'seen'}");
    /* the first one only, said where */
    is_int(where_calls, 1);
    ok(strstr(log, "[translate_messages] messages.0.content.0: block type \"hologram\" is unknown to the gateway: only its text "
                   "was sent") != NULL);
    ok(strstr(log, "widget") == NULL);
}

static void test_fixups(void)
{
    const char *missing;
    pgw_messages_t *m = start(0);
    pgw_toolnames_t names = {NULL};

    pgw_messages_begin(m);
    pgw_block_t *b = block("tool_use");
    b->id = S("1");
    b->name = S("a.b");
    pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing);
    b = block("tool_use");
    b->id = S("2");
    b->name = S("Read");
    pgw_messages_block(m, PGW_ROLE_ASSISTANT, b, NULL, &missing);
    pgw_messages_end(m, PGW_ROLE_ASSISTANT);
    /* a_b and a.b collide in `tools`: both take the hashed form, and the history follows */
    pgw_toolnames_add(&names, H2O_STRLIT("a.b"));
    pgw_toolnames_add(&names, H2O_STRLIT("a_b"));
    char expected[512];
    snprintf(expected, sizeof(expected),
             "{'role':'assistant','content':null,'tool_calls':[{'id':'1','type':'function','function':{'name':'%s','arguments':"
             "'{}'}},{'id':'2','type':'function','function':{'name':'Read','arguments':'{}'}}]}",
             pgw_toolnames_mapped(&names, H2O_STRLIT("a.b")));
    ok(strcmp(pgw_toolnames_mapped(&names, H2O_STRLIT("a.b")), "a_b") != 0);
    is_str(finish(m, &names), expected);
    pgw_toolnames_dispose(&names);
}

static void test_blank(void)
{
    ok(pgw_is_blank("", 0));
    ok(pgw_is_blank(H2O_STRLIT(" \t\r\n\f\v")));
    ok(!pgw_is_blank(H2O_STRLIT(" x ")));
    ok(!pgw_is_blank(H2O_STRLIT("\xc2\xa0"))); /* a no-break space is text */
}

void test_src__translate_messages_c(void)
{
    subtest("turns", test_turns);
    subtest("trailing calls", test_trailing_calls);
    subtest("nested content", test_nested);
    subtest("required members", test_required);
    subtest("unknown types", test_unknown_types);
    subtest("tool name fixups", test_fixups);
    subtest("blank", test_blank);
}
