/* poe-gateway: MIT licence. Web search on translated routes, the answer's side (docs/mapping.md#web-search): the pages a
 * bot cited, gathered from its annotations or citations, and the server_tool_use and web_search_tool_result blocks that
 * both answer translators write from them. */
#ifndef PGW_TRANSLATE_SEARCH_H
#define PGW_TRANSLATE_SEARCH_H

#include <stddef.h>
#include <h2o/memory.h>
#include <yajl/yajl_tree.h>

/** The most results one answer reports (Claude Code refuses a web_search_tool_result holding more). */
#define PGW_SEARCH_MAX_RESULTS 100

/** Room for a server_tool_use id: "srvtoolu_" and (some of) the message id's characters after "msg_". */
#define PGW_SEARCH_ID_SIZE 64

/**
 * The search of one answer: whether the request searched, and the pages the answer cited, each URL once, in the order
 * first seen. A search is reported when the answer cites pages: the bot decides whether to search, and its citations
 * are the only sign that it did.
 */
typedef struct st_pgw_search_t {
    int enabled;                 /* the request searched through the bot's knob: the answer reports it */
    int used;                    /* the server_tool_use block was written: the answer reports a search */
    char id[PGW_SEARCH_ID_SIZE]; /* the server_tool_use id */
    struct {
        char *url;   /* owned */
        char *title; /* owned; "" until one is given */
    } *pages;        /* owned array */
    size_t num_pages;
} pgw_search_t;

/**
 * Starts the search of the message `msg_id`; `enabled` when the request searched (pgw_translated_t.web_search). The id
 * is "srvtoolu_" and the message id's part after "msg_", sanitised: deterministic, as translators have no randomness.
 */
void pgw_search_init(pgw_search_t *s, int enabled, const char *msg_id);
void pgw_search_dispose(pgw_search_t *s);

/**
 * Gathers the pages in `v`, the value of an `annotations` or `citations` member, whatever its shape: an array (nested
 * arrays too, as LiteLLM nests citations per text block) whose items are URL strings, OpenAI's url_citation annotations
 * ({"type":"url_citation","url_citation":{"url","title"}}), or objects with `url` and `title`. A URL already gathered is
 * not added again (a later title fills a missing one); items that are none of these, and pages beyond
 * PGW_SEARCH_MAX_RESULTS, are ignored. `v` may be NULL. Nothing is gathered unless the search is enabled.
 */
void pgw_search_collect(pgw_search_t *s, yajl_val v);

/** The same for the JSON text of such a value (a stream chunk's span); text that does not parse adds nothing. */
void pgw_search_collect_json(pgw_search_t *s, const char *json, size_t len);

/** Appends the block {"type":"server_tool_use","id":<id>,"name":"web_search","input":{}}, and notes it was written. */
void pgw_search_append_use(pgw_search_t *s, h2o_buffer_t **out);

/**
 * Appends the block {"type":"web_search_tool_result","tool_use_id":<id>,"content":[...]} with one web_search_result per
 * page gathered (its title, else its URL, as title); content is [] when none was.
 */
void pgw_search_append_result(const pgw_search_t *s, h2o_buffer_t **out);

/** Appends the usage member `,"server_tool_use":{"web_search_requests":1}` once the server_tool_use block was written;
 * else nothing. */
void pgw_search_append_usage(const pgw_search_t *s, h2o_buffer_t **out);

/**
 * For a stream's end: when pages were gathered, appends the server_tool_use block and the web_search_tool_result block,
 * each as frames (content_block_start, content_block_stop: neither has deltas) at `*next_index`, which it advances.
 * Otherwise nothing.
 */
void pgw_search_append_frames(pgw_search_t *s, h2o_buffer_t **out, int *next_index);

#endif
