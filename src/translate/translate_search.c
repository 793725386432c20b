/* poe-gateway: MIT licence. Web search on translated routes, the answer's side (docs/mapping.md#web-search).
 *
 * A request whose web_search server tool became the bot's web_search knob lets the bot search; the answer then says it
 * did in the blocks Anthropic's API uses and Claude Code counts: a server_tool_use block and a web_search_tool_result
 * block listing the pages the bot cited. Poe's chat/completions does not report a search itself, only what the answer
 * cites: OpenAI-compatible APIs put url_citation annotations on the message (or a stream's delta), LiteLLM-style
 * providers a `citations` list (of URLs, or of objects with url and title, sometimes one list per text block). This
 * file gathers the pages from any of these shapes, each URL once, and writes the two blocks when there are any; where
 * they go in the answer is the translators' choice (src/translate/translate_response.c, src/translate/translate_stream.c).
 */
#include <stdlib.h>
#include <string.h>
#include "common/json.h"
#include "translate/translate.h"
#include "translate/translate_search.h"

/* what Claude Code accepts in a web_search_tool_result (longer URLs are skipped, longer titles cut) */
#define MAX_URL 8192
#define MAX_TITLE 2000
/* nesting of citation lists followed; deeper values are ignored */
#define MAX_NESTING 4

void pgw_search_init(pgw_search_t *s, int enabled, const char *msg_id)
{
    const char *rnd = strncmp(msg_id, "msg_", 4) == 0 ? msg_id + 4 : msg_id;
    size_t len = strlen(rnd), room = sizeof(s->id) - sizeof("srvtoolu_");

    memset(s, 0, sizeof(*s));
    s->enabled = enabled;
    /* Claude Code wants the id to match ^[\w-]{1,128}$ */
    memcpy(s->id, "srvtoolu_", 9);
    pgw_toolcall_id_sanitise(rnd, len < room ? len : room, s->id + 9, sizeof(s->id) - 9);
}

void pgw_search_dispose(pgw_search_t *s)
{
    for (size_t i = 0; i != s->num_pages; ++i) {
        free(s->pages[i].url);
        free(s->pages[i].title);
    }
    free(s->pages);
    s->pages = NULL;
    s->num_pages = 0;
}

static const char *member(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    yajl_val v = obj != NULL && YAJL_IS_OBJECT(obj) ? yajl_tree_get(obj, path, yajl_t_string) : NULL;
    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

/* a copy of at most `max` bytes of `s`, not cut inside a UTF-8 sequence */
static char *dup_cut(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len > max) {
        len = max;
        while (len != 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
            --len;
    }
    char *d = h2o_mem_alloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

static void add_page(pgw_search_t *s, const char *url, const char *title)
{
    if (url == NULL || url[0] == '\0' || strlen(url) > MAX_URL)
        return;
    if (title == NULL)
        title = "";
    for (size_t i = 0; i != s->num_pages; ++i) {
        if (strcmp(s->pages[i].url, url) == 0) {
            if (s->pages[i].title[0] == '\0' && title[0] != '\0') {
                free(s->pages[i].title); /* a URL cited bare first, then with its title */
                s->pages[i].title = dup_cut(title, MAX_TITLE);
            }
            return;
        }
    }
    if (s->num_pages == PGW_SEARCH_MAX_RESULTS)
        return;
    s->pages = h2o_mem_realloc(s->pages, sizeof(*s->pages) * (s->num_pages + 1));
    s->pages[s->num_pages].url = dup_cut(url, MAX_URL);
    s->pages[s->num_pages].title = dup_cut(title, MAX_TITLE);
    ++s->num_pages;
}

static void collect(pgw_search_t *s, yajl_val v, int depth)
{
    if (v == NULL || depth > MAX_NESTING)
        return;
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i != v->u.array.len; ++i)
            collect(s, v->u.array.values[i], depth + 1);
    } else if (YAJL_IS_STRING(v)) {
        add_page(s, YAJL_GET_STRING(v), NULL);
    } else if (YAJL_IS_OBJECT(v)) {
        const char *path[] = {"url_citation", NULL};
        yajl_val inner = yajl_tree_get(v, path, yajl_t_object);
        if (inner != NULL)
            v = inner; /* OpenAI's {"type":"url_citation","url_citation":{...}} */
        add_page(s, member(v, "url"), member(v, "title"));
    }
}

void pgw_search_collect(pgw_search_t *s, yajl_val v)
{
    if (s->enabled)
        collect(s, v, 0);
}

void pgw_search_collect_json(pgw_search_t *s, const char *json, size_t len)
{
    if (!s->enabled)
        return;
    char *copy = h2o_mem_alloc(len + 1);
    memcpy(copy, json, len);
    copy[len] = '\0';
    yajl_val v = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (v != NULL) {
        collect(s, v, 0);
        yajl_tree_free(v);
    }
}

void pgw_search_append_use(pgw_search_t *s, h2o_buffer_t **out)
{
    s->used = 1;
    pgw_buf_append_lit(out, "{\"type\":\"server_tool_use\",\"id\":");
    pgw_json_append_string(out, s->id, strlen(s->id));
    /* the bot's query is not reported by Poe: an empty input rather than an invented one */
    pgw_buf_append_lit(out, ",\"name\":\"web_search\",\"input\":{}}");
}

void pgw_search_append_result(const pgw_search_t *s, h2o_buffer_t **out)
{
    pgw_buf_append_lit(out, "{\"type\":\"web_search_tool_result\",\"tool_use_id\":");
    pgw_json_append_string(out, s->id, strlen(s->id));
    pgw_buf_append_lit(out, ",\"content\":[");
    for (size_t i = 0; i != s->num_pages; ++i) {
        const char *url = s->pages[i].url, *title = s->pages[i].title;
        if (title[0] == '\0')
            title = url;
        if (i != 0)
            pgw_buf_append_lit(out, ",");
        pgw_buf_append_lit(out, "{\"type\":\"web_search_result\",\"url\":");
        pgw_json_append_string(out, url, strlen(url));
        pgw_buf_append_lit(out, ",\"title\":");
        pgw_json_append_string(out, title, strlen(title));
        /* Anthropic's encrypted page content lets Claude quote a page later; there is none to give */
        pgw_buf_append_lit(out, ",\"encrypted_content\":\"\",\"page_age\":null}");
    }
    pgw_buf_append_lit(out, "]}");
}

void pgw_search_append_usage(const pgw_search_t *s, h2o_buffer_t **out)
{
    if (s->used)
        pgw_buf_append_lit(out, ",\"server_tool_use\":{\"web_search_requests\":1}");
}

/* one whole block as stream frames */
static void append_block_frames(pgw_search_t *s, h2o_buffer_t **out, int index, int result)
{
    pgw_buf_append_lit(out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":");
    pgw_json_append_int(out, index);
    pgw_buf_append_lit(out, ",\"content_block\":");
    if (result)
        pgw_search_append_result(s, out);
    else
        pgw_search_append_use(s, out);
    pgw_buf_append_lit(out, "}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":");
    pgw_json_append_int(out, index);
    pgw_buf_append_lit(out, "}\n\n");
}

void pgw_search_append_frames(pgw_search_t *s, h2o_buffer_t **out, int *next_index)
{
    if (s->num_pages == 0)
        return;
    append_block_frames(s, out, (*next_index)++, 0);
    append_block_frames(s, out, (*next_index)++, 1);
}
