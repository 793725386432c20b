/* poe-gateway: MIT licence. libFuzzer target: the pass-through usage parser (src/common/usage.c).
 *
 * Input: 4 split-size bytes, then a response body (a whole Anthropic message, or one SSE event's data). The body goes
 * through pgw_usage_parser_* once whole and once in pieces: the usage noted and the verdict of _finish must not depend on
 * the split. pgw_usage_note_event sees the body too (read by pgw_json_read, yajl the fallback), and must note what the
 * whole parse notes, whatever the body. */
#include "fuzz.h"
#include "common/usage.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t sizes[4];
    for (int i = 0; i != 4; ++i)
        sizes[i] = fuzz_take(&data, &size);
    /* a copy without slack, so that ASan sees any read past the end */
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);

    pgw_usage_t whole = {-1, -1, -1, -1}, split = {-1, -1, -1, -1}, noted = {-1, -1, -1, -1};
    pgw_usage_parser_t p;
    pgw_usage_parser_init(&p, &whole);
    pgw_usage_parser_feed(&p, body, size);
    int ok_whole = pgw_usage_parser_finish(&p);
    pgw_usage_parser_dispose(&p);

    pgw_usage_parser_init(&p, &split);
    for (size_t off = 0, i = 0; off < size; ++i) {
        size_t n = (size_t)sizes[i % 4] % 32 + 1;
        if (n > size - off)
            n = size - off;
        pgw_usage_parser_feed(&p, body + off, n);
        off += n;
    }
    int ok_split = pgw_usage_parser_finish(&p);
    pgw_usage_parser_dispose(&p);
    pgw_usage_parser_dispose(&p); /* documented as safe to repeat */

    FUZZ_ASSERT(ok_whole == ok_split, "finish says %d whole, %d split", ok_whole, ok_split);
    if (ok_whole == 0)
        FUZZ_ASSERT(memcmp(&whole, &split, sizeof(whole)) == 0, "usage differs with the split");

    /* note_event reads with pgw_json_read, and yajl for what that leaves: what it notes is what the parser (yajl alone)
     * notes, malformed bodies included (the usage read before the error stays) */
    pgw_usage_note_event(&noted, body, size);
    if (memmem(body, size, "\"usage\"", 7) != NULL)
        FUZZ_ASSERT(memcmp(&whole, &noted, sizeof(whole)) == 0, "note_event differs from the parser");

    free(body);
    return 0;
}
