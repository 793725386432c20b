/* poe-gateway: MIT licence. libFuzzer target: the whole-response translator (src/translate/translate_response.c), the upstream
 * error mapping (src/upstream/upstream_errors.c) and the Retry-After parser (src/upstream/upstream.c), all fed Poe's bytes.
 *
 * Input: 1 flag byte (buffer of known tools, stop sequences, the status an error body came with, web search), then the
 * body. A success writes one valid JSON document, with no search block unless the request searched; a failure names a
 * status >= 400, a type and a message; the error mapping always yields a status >= 400 and a NUL-terminated message. */
#include <h2o/socket.h>
#include "fuzz.h"
#include "translate/translate.h"
#include "upstream/upstream.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {0, 200, 400, 401, 402, 403, 404, 408, 413, 429, 500, 502, 503, 504, 529, 418};
    uint8_t flags = fuzz_take(&data, &size);
    pgw_toolnames_t names = {NULL};
    pgw_response_opts_t opts = {"msg_4f6a0c2e9b1d7a3c5e8f0b2d", "gpt-5", 1000, &names};
    opts.buffer_tools = flags & 1;
    if (flags & 2) {
        opts.stop_sequences[0] = "###";
        opts.stop_sequences[1] = "END";
    }
    if (flags & 4) {
        pgw_toolnames_add(&names, "Read", 4);
        pgw_toolnames_add(&names, "mcp__server__tool.with.dots", 27);
    }
    opts.web_search = flags >> 7;
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);

    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    pgw_upstream_failure_t fail;
    memset(&fail, 0, sizeof(fail));
    if (pgw_translate_response(body, size, &opts, &out, &fail) == 0) {
        FUZZ_ASSERT(fuzz_json_valid(out->bytes, out->size), "success with invalid JSON: %.*s", (int)(out->size > 2000 ? 2000 : out->size),
                    out->bytes);
        FUZZ_ASSERT(opts.web_search || memmem(out->bytes, out->size, H2O_STRLIT("\"type\":\"server_tool_use\"")) == NULL,
                    "a search block for a request that did not search");
    } else {
        FUZZ_ASSERT(fail.status >= 400 && fail.status <= 599, "failure status %d", fail.status);
        FUZZ_ASSERT(fail.type != NULL && memchr(fail.message, '\0', sizeof(fail.message)) != NULL, "failure without type/message");
    }
    h2o_buffer_dispose(&out);

    pgw_upstream_failure_t mapped;
    memset(&mapped, 0, sizeof(mapped));
    pgw_map_upstream_error(statuses[(flags >> 3) & 15], body, size, "fuzz-route", "fuzz-secret", &mapped);
    FUZZ_ASSERT(mapped.status >= 400 && mapped.status <= 599, "mapped status %d", mapped.status);
    FUZZ_ASSERT(mapped.type != NULL && memchr(mapped.message, '\0', sizeof(mapped.message)) != NULL, "mapped without type/message");

    /* the first line, as a Retry-After value: -1 (ignored) or a delay in ms */
    size_t line = 0;
    while (line < size && line < 80 && body[line] != '\n')
        ++line;
    long ra = pgw_upstream_parse_retry_after(h2o_iovec_init(body, line), 1764150000);
    /* "1e300", "nan", "inf": (long)(secs * 1000) overflows (FUZZ_ALLOW=retry-after-overflow) */
    FUZZ_ASSERT(ra >= -1 || fuzz_allowed("retry-after-overflow"), "Retry-After '%.*s' parsed as %ld", (int)line, body, ra);

    free(body);
    pgw_toolnames_dispose(&names);
    return 0;
}
