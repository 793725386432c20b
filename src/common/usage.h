/* poe-gateway: MIT licence. Token usage noted from responses, whole or streamed, on the side: Anthropic's usage objects,
 * and OpenAI's (chat/completions) read as Anthropic's counts. */
#ifndef PGW_USAGE_H
#define PGW_USAGE_H

#include <stddef.h>
#include <yajl/yajl_parse.h>

typedef struct st_pgw_usage_t {
    long long input_tokens;
    long long output_tokens;
    long long cache_read_input_tokens;
    long long cache_creation_input_tokens;
} pgw_usage_t;

/**
 * Incremental JSON reader that copies the numeric fields of every "usage" object it meets into `usage` (later values
 * overwrite earlier ones: Anthropic's message_delta carries cumulative counts). It never fails the caller: malformed
 * JSON simply stops the noting. OpenAI's usage (`prompt_tokens`, `completion_tokens`, `prompt_tokens_details`) is read
 * as Anthropic's counts by the rules of docs/mapping.md#usage: input_tokens is prompt_tokens less the cached tokens.
 */
typedef struct st_pgw_usage_parser_t {
    yajl_handle handle;
    pgw_usage_t *usage;
    int depth;       /* current nesting */
    int usage_depth; /* nesting of the usage object being read, 0 when outside one */
    int pending_usage;
    long long *field; /* the usage field whose value comes next, or NULL */
    int failed;
    /* OpenAI's counts in the usage object being read, resolved into `usage` at its end */
    int details_depth; /* nesting of its prompt_tokens_details object, 0 when outside one */
    int pending_details;
    long long prompt_tokens, details_cached, details_creation; /* -1 when absent */

} pgw_usage_parser_t;

void pgw_usage_parser_init(pgw_usage_parser_t *p, pgw_usage_t *usage);
void pgw_usage_parser_feed(pgw_usage_parser_t *p, const char *bytes, size_t len);
/** Ends the document; returns 0 when it was well-formed JSON. */
int pgw_usage_parser_finish(pgw_usage_parser_t *p);
void pgw_usage_parser_dispose(pgw_usage_parser_t *p);

/**
 * Notes the usage carried by one SSE event's data (a whole JSON document), if it mentions any.
 */
void pgw_usage_note_event(pgw_usage_t *usage, const char *data, size_t len);

#endif
