/* poe-gateway: MIT licence. Unit tests for src/translate/translate_search.c: the pages an answer cited, from every shape
 * Poe's bots give them in, and the search blocks written from them (docs/mapping.md#web-search). The blocks in whole and
 * streamed answers are tested through the golden cases of translate_response.c and translate_stream.c. */
#include <h2o/socket.h>
#include "../../../../src/translate/translate_search.c"
#include "../../test.h"

/* the pages gathered, as "url|title;" */
static const char *pages(const pgw_search_t *s)
{
    static char buf[4096];
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i != s->num_pages && len < sizeof(buf); ++i)
        len += snprintf(buf + len, sizeof(buf) - len, "%s|%s;", s->pages[i].url, s->pages[i].title);
    return buf;
}

static void collect_str(pgw_search_t *s, const char *json)
{
    pgw_search_collect_json(s, json, strlen(json));
}

static void test_shapes(void)
{
    pgw_search_t s;

    pgw_search_init(&s, 1, "msg_0123abcd");
    /* OpenAI's url_citation annotations */
    collect_str(&s, "[{\"type\":\"url_citation\",\"url_citation\":{\"url\":\"https://a.example/\",\"title\":\"A\","
                    "\"start_index\":0}}]");
    is_str(pages(&s), "https://a.example/|A;");
    /* the same URL again: once */
    collect_str(&s, "[{\"type\":\"url_citation\",\"url_citation\":{\"url\":\"https://a.example/\",\"title\":\"A again\"}}]");
    is_str(pages(&s), "https://a.example/|A;");
    /* bare URLs (Perplexity-style citations), then the title of one of them, from LiteLLM's nested lists of objects */
    collect_str(&s, "[\"https://b.example/\",\"https://c.example/\",42,null,{\"no\":\"url\"},\"\"]");
    is_str(pages(&s), "https://a.example/|A;https://b.example/|;https://c.example/|;");
    collect_str(&s, "[[{\"type\":\"web_search_result_location\",\"url\":\"https://c.example/\",\"title\":\"C\"}],[]]");
    is_str(pages(&s), "https://a.example/|A;https://b.example/|;https://c.example/|C;");
    /* not JSON, or nested too deep: nothing */
    collect_str(&s, "[\"https://d.example/\"");
    collect_str(&s, "[[[[[[\"https://e.example/\"]]]]]]");
    is_int(s.num_pages, 3);
    pgw_search_dispose(&s);

    /* a request that did not search gathers nothing */
    pgw_search_init(&s, 0, "msg_0123abcd");
    collect_str(&s, "[\"https://a.example/\"]");
    is_int(s.num_pages, 0);
    pgw_search_dispose(&s);
}

static void test_limits(void)
{
    pgw_search_t s;
    char json[64], *url = h2o_mem_alloc(MAX_URL + 16), *title = h2o_mem_alloc(MAX_TITLE + 16);
    h2o_buffer_t *buf;

    pgw_search_init(&s, 1, "msg_1");
    for (int i = 0; i != PGW_SEARCH_MAX_RESULTS + 5; ++i) {
        snprintf(json, sizeof(json), "[\"https://x.example/%d\"]", i);
        collect_str(&s, json);
    }
    is_int(s.num_pages, PGW_SEARCH_MAX_RESULTS);
    pgw_search_dispose(&s);

    /* a URL longer than Claude Code takes is skipped; a long title is cut, never inside a UTF-8 character */
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    memset(url, 'u', MAX_URL + 1);
    url[MAX_URL + 1] = '\0';
    pgw_buf_append_lit(&buf, "[{\"url\":\"");
    pgw_buf_append_str(&buf, url);
    pgw_buf_append_lit(&buf, "\"},{\"url\":\"https://t.example/\",\"title\":\"");
    memset(title, 'a', MAX_TITLE - 1);
    memcpy(title + MAX_TITLE - 1, "\xc3\xa9\xc3\xa9", 5);
    pgw_buf_append_str(&buf, title);
    pgw_buf_append_lit(&buf, "\"}]");
    pgw_search_init(&s, 1, "msg_1");
    pgw_search_collect_json(&s, buf->bytes, buf->size);
    is_int(s.num_pages, 1);
    is_int(strlen(s.pages[0].title), MAX_TITLE - 1);
    pgw_search_dispose(&s);
    h2o_buffer_dispose(&buf);
    free(url);
    free(title);
}

static void test_blocks(void)
{
    pgw_search_t s;
    h2o_buffer_t *out;
    int next = 3;

    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    /* the id: the message id's part after msg_, sanitised */
    pgw_search_init(&s, 1, "msg_ab:cd");
    is_str(s.id, "srvtoolu_ab_cd");
    /* nothing cited: no blocks, no usage */
    pgw_search_append_frames(&s, &out, &next);
    pgw_search_append_usage(&s, &out);
    is_int(out->size, 0);
    is_int(next, 3);
    collect_str(&s, "[\"https://a.example/\",{\"url\":\"https://b.example/\",\"title\":\"B \\\"quoted\\\"\"}]");
    pgw_search_append_frames(&s, &out, &next);
    pgw_search_append_usage(&s, &out);
    pgw_buf_append_lit(&out, "|");
    is_int(next, 5);
    char *got = h2o_strdup(NULL, out->bytes, out->size).base;
    is_str(got, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":"
                "{\"type\":\"server_tool_use\",\"id\":\"srvtoolu_ab_cd\",\"name\":\"web_search\",\"input\":{}}}\n\n"
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":3}\n\n"
                "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":4,\"content_block\":"
                "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"srvtoolu_ab_cd\",\"content\":["
                "{\"type\":\"web_search_result\",\"url\":\"https://a.example/\",\"title\":\"https://a.example/\","
                "\"encrypted_content\":\"\",\"page_age\":null},"
                "{\"type\":\"web_search_result\",\"url\":\"https://b.example/\",\"title\":\"B \\\"quoted\\\"\","
                "\"encrypted_content\":\"\",\"page_age\":null}]}}\n\n"
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":4}\n\n"
                ",\"server_tool_use\":{\"web_search_requests\":1}|");
    free(got);
    pgw_search_dispose(&s);
    h2o_buffer_dispose(&out);
}

void test_src__translate_search_c(void)
{
    subtest("shapes", test_shapes);
    subtest("limits", test_limits);
    subtest("blocks", test_blocks);
}
