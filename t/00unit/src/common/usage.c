/* poe-gateway: MIT licence. Unit tests for src/common/usage.c. */
#include <string.h>
#include <h2o/string_.h>
#include "../../../../src/common/usage.c"
#include "../../test.h"

void test_src__usage_c(void)
{
    pgw_usage_t u;
    memset(&u, 0, sizeof(u));

    const char *start = "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":26,"
                        "\"output_tokens\":1,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":7,"
                        "\"server_tool_use\":{\"input_tokens\":999}}}}";
    pgw_usage_note_event(&u, start, strlen(start));
    is_int(u.input_tokens, 26);
    is_int(u.output_tokens, 1);
    is_int(u.cache_read_input_tokens, 100);
    is_int(u.cache_creation_input_tokens, 7);

    const char *delta = "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":42}}";
    pgw_usage_note_event(&u, delta, strlen(delta));
    is_int(u.output_tokens, 42);
    is_int(u.input_tokens, 26);

    /* events without usage, and broken JSON, change nothing */
    pgw_usage_note_event(&u, H2O_STRLIT("{\"type\":\"ping\"}"));
    pgw_usage_note_event(&u, H2O_STRLIT("{\"usage\":{\"output_tokens\":"));
    is_int(u.output_tokens, 42);

    /* a whole message fed in pieces, one byte at a time */
    const char *whole = "{\"id\":\"x\",\"content\":[{\"type\":\"text\",\"text\":\"{\\\"usage\\\":1}\"}],"
                        "\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}";
    memset(&u, 0, sizeof(u));
    pgw_usage_parser_t p;
    pgw_usage_parser_init(&p, &u);
    for (size_t i = 0; whole[i] != '\0'; ++i)
        pgw_usage_parser_feed(&p, whole + i, 1);
    is_int(pgw_usage_parser_finish(&p), 0);
    pgw_usage_parser_dispose(&p);
    is_int(u.input_tokens, 3);
    is_int(u.output_tokens, 4);

    /* OpenAI's usage (chat/completions): prompt_tokens counts the cache, input_tokens does not; a null usage is none */
    memset(&u, 0, sizeof(u));
    pgw_usage_note_event(&u, H2O_STRLIT("{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}"));
    is_int(u.input_tokens, 0);
    const char *chunk = "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":30,"
                        "\"total_tokens\":150,\"prompt_tokens_details\":{\"cached_tokens\":100,\"audio_tokens\":0},"
                        "\"completion_tokens_details\":{\"reasoning_tokens\":7}}}";
    pgw_usage_note_event(&u, chunk, strlen(chunk));
    is_int(u.input_tokens, 20);
    is_int(u.output_tokens, 30);
    is_int(u.cache_read_input_tokens, 100);
    is_int(u.cache_creation_input_tokens, 0);
    /* Poe's top-level cache forms count when the details say nothing; never both added */
    memset(&u, 0, sizeof(u));
    pgw_usage_note_event(&u, H2O_STRLIT("{\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":5,\"cache_read_input_tokens\":40,"
                                        "\"cache_creation_input_tokens\":4}}"));
    is_int(u.input_tokens, 6);
    is_int(u.cache_read_input_tokens, 40);
    is_int(u.cache_creation_input_tokens, 4);
    memset(&u, 0, sizeof(u));
    pgw_usage_note_event(&u, H2O_STRLIT("{\"usage\":{\"prompt_tokens\":50,\"cache_read_input_tokens\":40,"
                                        "\"prompt_tokens_details\":{\"cached_tokens\":30}}}"));
    is_int(u.input_tokens, 20);
    is_int(u.cache_read_input_tokens, 30);
}
