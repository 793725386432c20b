/* poe-gateway: MIT licence. libFuzzer target: the SSE reader (src/relay/sse.c).
 *
 * Input: 1 flag byte (max_event choice), 4 split-size bytes, then the stream. The stream is read twice, once in one
 * feed and once cut into pieces of the chosen sizes; both must yield the same events (the reader promises that its
 * output does not depend on the split) and agree on pgw_sse_reader_at_boundary. */
#include <h2o/socket.h>
#include "fuzz.h"
#include "common/json.h"
#include "relay/sse.h"

struct events {
    h2o_buffer_t *buf; /* each event as name \0 data \0 */
    size_t count;
};

static int on_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    struct events *e = ctx;
    pgw_buf_append(&e->buf, event.base, event.len);
    pgw_buf_append(&e->buf, "\0", 1);
    pgw_buf_append(&e->buf, data.base, data.len);
    pgw_buf_append(&e->buf, "\0", 1);
    ++e->count;
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t max_events[] = {0, 16, 1024, 65536};
    uint8_t flags = fuzz_take(&data, &size);
    uint8_t sizes[4];
    for (int i = 0; i != 4; ++i)
        sizes[i] = fuzz_take(&data, &size);
    size_t max_event = max_events[flags & 3];

    struct events whole = {NULL}, split = {NULL};
    h2o_buffer_init(&whole.buf, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&split.buf, &h2o_socket_buffer_prototype);

    pgw_sse_reader_t r1, r2;
    pgw_sse_reader_init(&r1, max_event);
    pgw_sse_reader_init(&r2, max_event);
    int ret1 = pgw_sse_reader_feed(&r1, (const char *)data, size, on_event, &whole);
    int ret2 = 0;
    for (size_t off = 0, i = 0; off < size && ret2 == 0; ++i) {
        size_t n = (size_t)sizes[i % 4] + 1;
        if (flags & 4)
            n = 1; /* every byte on its own */
        if (n > size - off)
            n = size - off;
        ret2 = pgw_sse_reader_feed(&r2, (const char *)data + off, n, on_event, &split);
        off += n;
    }
    /* an oversized event may be noticed earlier when the line arrives in pieces; only complete runs compare */
    if (ret1 == 0 && ret2 == 0) {
        FUZZ_ASSERT(whole.count == split.count, "%zu events whole, %zu split", whole.count, split.count);
        FUZZ_ASSERT(whole.buf->size == split.buf->size &&
                        (whole.buf->size == 0 || memcmp(whole.buf->bytes, split.buf->bytes, whole.buf->size) == 0),
                    "the events differ with the split");
        FUZZ_ASSERT(pgw_sse_reader_at_boundary(&r1) == pgw_sse_reader_at_boundary(&r2), "at_boundary differs with the split");
    }
    if (max_event == 0)
        FUZZ_ASSERT(ret1 == 0 && ret2 == 0, "the reader failed without a limit");

    pgw_sse_reader_dispose(&r1);
    pgw_sse_reader_dispose(&r2);
    h2o_buffer_dispose(&whole.buf);
    h2o_buffer_dispose(&split.buf);
    return 0;
}
