/* poe-gateway: MIT licence. libFuzzer target: the request translator (src/translate/translate_request.c).
 *
 * Input: 1 flag byte choosing the route options (bot known or not, echo_reasoning, minimal_schema, extra_body), then the
 * client's body. Oracles besides the sanitizers: a success writes one valid JSON document, in UTF-8 when the body is (a
 * lone surrogate escape becomes U+FFFD); a failure writes a NUL-terminated, non-empty message; the estimate is never
 * negative; mapped tool names match ^[a-zA-Z0-9_-]{1,64}$; web search is on only where the bot declares it (or a pin
 * sets it), and then is sent; a refused server tool is a NUL-terminated type; the same translation with the body read by
 * yajl alone (fuzz/translate_request_yajl.c, without src/common/json_reader.c) gives the same result, byte for byte. */
#include <limits.h>
#include <h2o/socket.h>
#include "fuzz.h"
#include "translate/translate.h"

int pgw_translate_request_yajl(const char *body, size_t len, const pgw_translate_opts_t *opts, h2o_buffer_t **out,
                               pgw_translated_t *res, char *err, size_t errsz);
void pgw_translated_dispose_yajl(pgw_translated_t *res);

static char *effort_values[] = {"minimal", "low", "medium", "high"};
static pgw_knob_t knobs_thinking[] = {
    {"thinking_budget", PGW_KNOB_INTEGER, 0, 31999},
    {"web_search", PGW_KNOB_BOOLEAN, LLONG_MIN, LLONG_MAX},
};
static pgw_knob_t knobs_effort[] = {
    {"reasoning_effort", PGW_KNOB_ENUM, LLONG_MIN, LLONG_MAX, effort_values, 4},
    {"verbosity", PGW_KNOB_OTHER, LLONG_MIN, LLONG_MAX},
};
static pgw_bot_t bots[] = {
    {"claude-sonnet-4.5", 32768, knobs_thinking, 2},
    {"gpt-5", 128000, knobs_effort, 2},
    {"tiny", 1, NULL, 0},
};

/* extra_body as the loader parses it: pins on knobs, and on fields the translation computes or owns */
static pgw_extra_body_t *pins_knobs, *pins_fields;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    pins_knobs = pgw_extra_body_parse(H2O_STRLIT("\"reasoning_effort\":\"low\",\"thinking_budget\":4096"));
    pins_fields = pgw_extra_body_parse(H2O_STRLIT("\"tools\":[],\"max_tokens\":5,\"model\":\"x\",\"stream_options\":{},\"k\\\"\":[1]"));
    FUZZ_ASSERT(pins_knobs != NULL && pins_fields != NULL, "the pins do not parse");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t flags = fuzz_take(&data, &size);
    pgw_translate_opts_t opts = {"the-bot"};
    switch (flags & 3) {
    case 0:
        opts.bot = NULL;
        break;
    default:
        opts.bot = &bots[(flags & 3) - 1];
        opts.upstream_model = opts.bot->id;
        break;
    }
    opts.echo_reasoning = (flags & 4) != 0;
    opts.minimal_schema = (flags & 8) != 0;
    if (flags & 16)
        opts.extra_body = pins_knobs;
    else if (flags & 32)
        opts.extra_body = pins_fields;

    /* a copy without slack, so that ASan sees any read past the end */
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);

    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_translated_t res;
    char err[256];
    memset(err, 'x', sizeof(err));
    int ret = pgw_translate_request(body, size, &opts, &out, &res, err, sizeof(err));

    /* the same translation with the body read by yajl alone: the same result, byte for byte */
    {
        h2o_buffer_t *out2;
        h2o_buffer_init(&out2, &h2o_socket_buffer_prototype);
        pgw_translated_t res2;
        char err2[256];
        memset(err2, 'x', sizeof(err2));
        int ret2 = pgw_translate_request_yajl(body, size, &opts, &out2, &res2, err2, sizeof(err2));
        FUZZ_ASSERT(ret2 == ret, "pgw_json_read: %d, yajl: %d", ret, ret2);
        if (ret == 0) {
            FUZZ_ASSERT(out2->size == out->size && memcmp(out2->bytes, out->bytes, out->size) == 0,
                        "outputs differ: %.*s\nagainst yajl's %.*s", (int)(out->size > 1000 ? 1000 : out->size), out->bytes,
                        (int)(out2->size > 1000 ? 1000 : out2->size), out2->bytes);
            FUZZ_ASSERT(res2.input_tokens == res.input_tokens && res2.max_tokens == res.max_tokens && res2.stream == res.stream &&
                            res2.web_search == res.web_search && strcmp(res2.refused_tool, res.refused_tool) == 0 &&
                            res2.toolnames.num_entries == res.toolnames.num_entries,
                        "results differ");
            for (size_t i = 0; i != 4; ++i)
                FUZZ_ASSERT((res.stop_sequences[i] == NULL) == (res2.stop_sequences[i] == NULL) &&
                                (res.stop_sequences[i] == NULL || strcmp(res.stop_sequences[i], res2.stop_sequences[i]) == 0),
                            "stop sequences differ");
        } else {
            FUZZ_ASSERT(strcmp(err, err2) == 0, "messages differ: \"%s\" against yajl's \"%s\"", err, err2);
        }
        pgw_translated_dispose_yajl(&res2);
        h2o_buffer_dispose(&out2);
    }
    if (ret == 0) {
        FUZZ_ASSERT(fuzz_json_valid(out->bytes, out->size), "success with invalid JSON: %.*s", (int)(out->size > 2000 ? 2000 : out->size),
                    out->bytes);
        /* UTF-8 in (the first look at a body refuses anything else), UTF-8 out, escapes of lone surrogates included */
        FUZZ_ASSERT(!fuzz_utf8_strict((const unsigned char *)body, size) || fuzz_utf8_strict((const unsigned char *)out->bytes, out->size),
                    "UTF-8 in, not UTF-8 out: %.*s", (int)(out->size > 2000 ? 2000 : out->size), out->bytes);
        FUZZ_ASSERT(res.input_tokens >= 0, "negative estimate %lld", res.input_tokens);
        FUZZ_ASSERT(res.max_tokens >= 0, "negative max_tokens %lld", res.max_tokens);
        if (opts.bot != NULL && opts.bot->max_output_tokens > 0)
            FUZZ_ASSERT(res.max_tokens <= opts.bot->max_output_tokens, "max_tokens %lld not clamped", res.max_tokens);
        FUZZ_ASSERT(memchr(res.refused_tool, '\0', sizeof(res.refused_tool)) != NULL, "refused_tool not terminated");
        if (res.web_search)
            FUZZ_ASSERT(opts.bot == &bots[0] && memmem(out->bytes, out->size, H2O_STRLIT(",\"web_search\":true")) != NULL,
                        "web search on a bot without the knob, or not sent");
        for (size_t i = 0; i != res.toolnames.num_entries; ++i) {
            const char *m = res.toolnames.entries[i].mapped;
            size_t n = strlen(m);
            FUZZ_ASSERT(n >= 1 && n <= PGW_TOOLNAME_MAX, "mapped tool name of %zu bytes", n);
            FUZZ_ASSERT(strspn(m, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n, "bad mapped name %s", m);
        }
    } else {
        FUZZ_ASSERT(ret == -1, "returned %d", ret);
        FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "no error message");
    }
    pgw_translated_dispose(&res);
    h2o_buffer_dispose(&out);
    free(body);
    return 0;
}
