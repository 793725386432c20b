/* poe-gateway: MIT licence. The object keys the request reader understands, and their lookup. */
#ifndef PGW_TRANSLATE_KEYS_H
#define PGW_TRANSLATE_KEYS_H

#include <stddef.h>

/* Every key the reader (src/translate/translate_request.c) acts on, in any object it reads. One list, so the enum and
 * the lookup cannot disagree; any other key is K_OTHER and is skipped (docs/mapping.md#top-level-fields). */
#define PGW_REQUEST_KEYS(X)                                                                                                                    \
    X(BUDGET_TOKENS, "budget_tokens")                                                                                              \
    X(CONTENT, "content")                                                                                                          \
    X(DATA, "data")                                                                                                                \
    X(DESCRIPTION, "description")                                                                                                  \
    X(DISABLE_PARALLEL_TOOL_USE, "disable_parallel_tool_use")                                                                      \
    X(EFFORT, "effort")                                                                                                            \
    X(FILE_ID, "file_id")                                                                                                          \
    X(ID, "id")                                                                                                                    \
    X(INPUT, "input")                                                                                                              \
    X(INPUT_SCHEMA, "input_schema")                                                                                                \
    X(IS_ERROR, "is_error")                                                                                                        \
    X(MAX_TOKENS, "max_tokens")                                                                                                    \
    X(MEDIA_TYPE, "media_type")                                                                                                    \
    X(MESSAGES, "messages")                                                                                                        \
    X(NAME, "name")                                                                                                                \
    X(OUTPUT_CONFIG, "output_config")                                                                                              \
    X(ROLE, "role")                                                                                                                \
    X(SOURCE, "source")                                                                                                            \
    X(STOP_SEQUENCES, "stop_sequences")                                                                                            \
    X(STREAM, "stream")                                                                                                            \
    X(SYSTEM, "system")                                                                                                            \
    X(TEMPERATURE, "temperature")                                                                                                  \
    X(TEXT, "text")                                                                                                                \
    X(THINKING, "thinking")                                                                                                        \
    X(TITLE, "title")                                                                                                              \
    X(TOOL_CHOICE, "tool_choice")                                                                                                  \
    X(TOOL_NAME, "tool_name")                                                                                                      \
    X(TOOL_USE_ID, "tool_use_id")                                                                                                  \
    X(TOOLS, "tools")                                                                                                              \
    X(TOP_P, "top_p")                                                                                                              \
    X(TYPE, "type")                                                                                                                \
    X(URL, "url")

typedef enum {
    K_NONE, /* no key read yet (arrays, the root) */
    K_OTHER,
#define X(e, s) K_##e,
    PGW_REQUEST_KEYS(X)
#undef X
} pgw_request_key_t;

/* The key spelled by the `len` bytes at `k` (already unescaped), or K_OTHER. */
pgw_request_key_t pgw_request_key_find(const char *k, size_t len);

/* The key's spelling ("" for K_NONE and K_OTHER). */
const char *pgw_request_key_name(pgw_request_key_t key);

#endif
