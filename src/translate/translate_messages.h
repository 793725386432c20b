/* poe-gateway: MIT licence. The chat/completions `messages` of a translated request (docs/mapping.md#messages): what
 * each Anthropic content block becomes, and the order of turns, tool calls and their results. The request translator
 * (src/translate/translate_request.c) reads the body and hands over each block, message and system text as it completes. */
#ifndef PGW_TRANSLATE_MESSAGES_H
#define PGW_TRANSLATE_MESSAGES_H

#include <stddef.h>
#include <h2o/memory.h>
#include "translate/estimate.h"
#include "translate/translate.h"

typedef enum en_pgw_role_t { PGW_ROLE_NONE, PGW_ROLE_USER, PGW_ROLE_ASSISTANT, PGW_ROLE_SYSTEM } pgw_role_t;

/**
 * One content block as the translator read it. The strings are views of the request (base NULL when the field is
 * absent), valid until the block is handed over. `joined` and `attach` belong to the translator, which resets them when
 * the block opens: they gather what the block's own content (of a tool_result, a document, a search_result) comes to
 * while it is read, through pgw_messages_block_text and the nested blocks handed over with this one as their parent.
 */
typedef struct st_pgw_block_t {
    h2o_iovec_t type, text, thinking, id, name, tool_use_id, tool_name, title;
    h2o_iovec_t source_str; /* search_result: `source` as a string (a URL) */
    int has_source;         /* `source` is an object: the src_ fields are its members */
    h2o_iovec_t src_type, src_media_type, src_data, src_url, src_file_id;
    int is_error;
    h2o_iovec_t input;    /* tool_use: the `input` object's bytes as they stand in the body; len 0 when absent */
    h2o_buffer_t *joined; /* the text of the content, joined with "\n", raw */
    size_t num_joined;
    h2o_buffer_t *attach; /* the image and file parts of the content, comma-separated JSON */
    size_t num_attach;
} pgw_block_t;

typedef struct st_pgw_messages_t pgw_messages_t;

/**
 * Writes where the block being handed over stands in the request, for a log line ("messages.3.content.1: "), into
 * `buf` (NUL-terminated, cut to fit); returns its length.
 */
typedef size_t (*pgw_messages_where_cb)(void *ctx, char *buf, size_t size);

/**
 * Starts the messages of one request. With `echo_reasoning` (the route's option), history thinking goes upstream as
 * reasoning_content. What is written is counted into `*est`, which must outlive the returned object. `where(ctx, ...)`
 * is called at most once, during a pgw_messages_block, to log the first block of a type the gateway does not know.
 */
pgw_messages_t *pgw_messages_create(int echo_reasoning, pgw_estimate_t *est, pgw_messages_where_cb where, void *ctx);
void pgw_messages_destroy(pgw_messages_t *m);

/** Adds the text of `system` (a string, or one text block of it): it goes first, as one system message. */
void pgw_messages_system(pgw_messages_t *m, const char *text, size_t len);

/** A message opens; its role may not be known yet, and nothing of it is handed over before it is. */
void pgw_messages_begin(pgw_messages_t *m);

/** A message's `content` given as a string, once its role is known. */
void pgw_messages_text(pgw_messages_t *m, pgw_role_t role, const char *text, size_t len);

/**
 * A content block has closed: one of a message with `role` (`parent` NULL), or one inside `parent`'s content, whose
 * text and attachments it joins. Returns 0, or -1 with `*missing` naming a member the block's type requires
 * ("source.data"): a 400.
 */
int pgw_messages_block(pgw_messages_t *m, pgw_role_t role, pgw_block_t *b, pgw_block_t *parent, const char **missing);

/** A string in a block's `content` (or its content source's): joins its text. */
void pgw_messages_block_text(pgw_block_t *b, const char *text, size_t len);

/** The message with `role` has closed: it is written, with what its turn owes before it. */
void pgw_messages_end(pgw_messages_t *m, pgw_role_t role);

/** `messages` has closed: the last assistant turn's calls that no result answered are answered. */
void pgw_messages_end_all(pgw_messages_t *m);

/**
 * Writes the system message and the messages, comma-separated, to `*out`. `names` is the request's tool names when a
 * collision among them changed a mapping, so that history tool calls take the final names (docs/mapping.md#tool-names);
 * NULL when none did.
 */
void pgw_messages_write(pgw_messages_t *m, const pgw_toolnames_t *names, h2o_buffer_t **out);

/** 1 when `p` is empty or white space only: such text is not sent. */
int pgw_is_blank(const char *p, size_t len);

#endif
