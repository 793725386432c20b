/* poe-gateway: MIT licence. Unit tests for src/translate/translate_answer.c: the tool_use ids (docs/mapping.md#identifiers) and
 * the stop_reason (docs/mapping.md#stop-reasons) both answer translators use. */
#include <h2o/socket.h>
#include "../../../../src/translate/translate_answer.c"
#include "../../test.h"

#define TEST_MSG_ID "msg_4f6a0c2e9b1d7a3c5e8f0b2d"

/* the id chosen (the buffer may move while it grows, so the offset is taken first) */
static const char *id_of(h2o_buffer_t **ids, const char *upstream, size_t pos)
{
    size_t off = pgw_tool_use_id(ids, upstream, strlen(upstream), TEST_MSG_ID, pos);
    return (*ids)->bytes + off;
}

static void test_tool_use_id(void)
{
    h2o_buffer_t *ids;
    h2o_buffer_init(&ids, &h2o_socket_buffer_prototype);
#define ID(upstream, pos) id_of(&ids, upstream, pos)
    is_str(ID("getWeather:0", 0), "getWeather_0");
    is_str(ID("functions.Bash:0", 1), "functions_Bash_0");
    is_str(ID("toolu_01ABCdef", 2), "toolu_01ABCdef");
    is_str(ID("", 3), "toolu_4f6a0c2e9b1d7a3c5e8f0b2d_3");
    is_str(ID("getWeather.0", 4), "getWeather_0_2");
    is_str(ID("getWeather_0", 5), "getWeather_0_3");
    is_str(ID("getWeather_0_2", 6), "getWeather_0_2_2");
    is_str(ID("caf\xc3\xa9", 7), "caf_");
#undef ID
    /* a message id without the msg_ prefix is used whole */
    size_t off = pgw_tool_use_id(&ids, "", 0, "m-1", 9);
    is_str(ids->bytes + off, "toolu_m-1_9");
    h2o_buffer_dispose(&ids);
}

/* the reason and the stop sequence reported, as "reason" or "reason/sequence" */
static const char *stop(const char *finish_reason, int has_tools, int has_refusal, const char *matched)
{
    static char buf[64];
    const char *seq = matched, *reason = pgw_stop_reason(finish_reason, has_tools, has_refusal, &seq);
    snprintf(buf, sizeof(buf), "%s%s%s", reason, seq != NULL ? "/" : "", seq != NULL ? seq : "");
    return buf;
}

static void test_stop_reason(void)
{
    /* length wins over everything: the answer was cut, a tool call in it included */
    is_str(stop("length", 1, 1, "###"), "max_tokens");
    is_str(stop("length", 0, 0, NULL), "max_tokens");
    /* then a tool call, whatever finish_reason said (upstreams say stop on turns mixing text and calls) */
    is_str(stop("stop", 1, 0, NULL), "tool_use");
    is_str(stop("content_filter", 1, 1, "###"), "tool_use");
    is_str(stop(NULL, 1, 0, NULL), "tool_use");
    /* then a refusal, or content_filter: never a stop sequence */
    is_str(stop("stop", 0, 1, "###"), "refusal");
    is_str(stop("content_filter", 0, 0, "###"), "refusal");
    /* then a stop sequence the upstream named */
    is_str(stop("stop", 0, 0, "###"), "stop_sequence/###");
    is_str(stop(NULL, 0, 0, "END"), "stop_sequence/END");
    /* else end_turn: stop, an unknown reason, none at all ("" is how a stream says none) */
    is_str(stop("stop", 0, 0, NULL), "end_turn");
    is_str(stop("tool_calls", 0, 0, NULL), "end_turn");
    is_str(stop("function_call", 0, 0, NULL), "end_turn");
    is_str(stop(NULL, 0, 0, NULL), "end_turn");
    is_str(stop("", 0, 0, NULL), "end_turn");
    /* the names are compared whole */
    is_str(stop("length_exceeded", 0, 0, NULL), "end_turn");
    is_str(stop("content_filtered", 0, 0, NULL), "end_turn");
}

void test_src__translate_answer_c(void)
{
    subtest("tool_use ids", test_tool_use_id);
    subtest("stop_reason", test_stop_reason);
}
