/* poe-gateway: MIT licence. Unit tests for src/relay/sse.c: every split of the input gives the same events. */
#include <stdio.h>
#include <string.h>
#include "../../../../src/relay/sse.c"
#include "../../test.h"

struct collected {
    char out[4096];
    size_t len;
};

static int collect(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    struct collected *c = ctx;
    c->len += snprintf(c->out + c->len, sizeof(c->out) - c->len, "[%.*s|%.*s]", (int)event.len, event.base, (int)data.len,
                       data.base);
    return 0;
}

static const char input[] = ": comment\r\n"
                            "event: message_start\r\n"
                            "data: {\"a\":1}\r\n"
                            "\r\n"
                            "data: line1\n"
                            "data:line2\n"
                            "id: 7\n"
                            "\n"
                            "\n" /* a blank line with no fields dispatches nothing */
                            "event: e\r"
                            "data\r"
                            "\r"
                            "event: last\n"
                            "data: x\n"
                            "\n";
static const char expected[] = "[message_start|{\"a\":1}][|line1\nline2][e|][last|x]";

static void run_split(size_t a, size_t b, struct collected *c)
{
    pgw_sse_reader_t r;
    pgw_sse_reader_init(&r, 0);
    c->len = 0;
    c->out[0] = '\0';
    size_t n = sizeof(input) - 1;
    pgw_sse_reader_feed(&r, input, a, collect, c);
    pgw_sse_reader_feed(&r, input + a, b - a, collect, c);
    pgw_sse_reader_feed(&r, input + b, n - b, collect, c);
    ok(pgw_sse_reader_at_boundary(&r));
    pgw_sse_reader_dispose(&r);
}

/* A relay in the manner of src/relay/passthrough.c: each event's own bytes, from where the last one ended to event_end */
struct relayed {
    pgw_sse_reader_t *r;
    const char *chunk;
    size_t done;
    char held[4096], out[4096];
    size_t held_len, out_len;
    int events, bad_ends;
};

static int relay_event(void *ctx, h2o_iovec_t event, h2o_iovec_t data)
{
    struct relayed *rl = ctx;
    size_t end = pgw_sse_reader_event_end(rl->r);
    memcpy(rl->out + rl->out_len, rl->held, rl->held_len);
    rl->out_len += rl->held_len;
    rl->held_len = 0;
    memcpy(rl->out + rl->out_len, rl->chunk + rl->done, end - rl->done);
    rl->out_len += end - rl->done;
    rl->done = end;
    /* an event's bytes end with its blank line's line end */
    if (rl->out[rl->out_len - 1] != '\n' && rl->out[rl->out_len - 1] != '\r')
        ++rl->bad_ends;
    ++rl->events;
    return 0;
}

static void relay_feed(struct relayed *rl, const char *bytes, size_t len)
{
    rl->chunk = bytes;
    rl->done = 0;
    pgw_sse_reader_feed(rl->r, bytes, len, relay_event, rl);
    memcpy(rl->held + rl->held_len, bytes + rl->done, len - rl->done);
    rl->held_len += len - rl->done;
}

static void test_event_end(void)
{
    size_t n = sizeof(input) - 1, bad = 0;
    for (size_t a = 0; a <= n; ++a)
        for (size_t b = a; b <= n; ++b) {
            pgw_sse_reader_t r;
            struct relayed rl = {&r};
            pgw_sse_reader_init(&r, 0);
            relay_feed(&rl, input, a);
            relay_feed(&rl, input + a, b - a);
            relay_feed(&rl, input + b, n - b);
            /* what was relayed and what is held make the input again, whatever the split; the held rest is no event */
            int whole = rl.out_len + rl.held_len == n && memcmp(rl.out, input, rl.out_len) == 0 &&
                        memcmp(rl.held, input + rl.out_len, rl.held_len) == 0;
            if (!whole || rl.bad_ends != 0 || rl.events != 4) {
                if (bad++ == 0)
                    note("split at %zu/%zu: relayed %zu + held %zu of %zu bytes, %d events", a, b, rl.out_len, rl.held_len, n,
                         rl.events);
            }
            pgw_sse_reader_dispose(&r);
        }
    is_int(bad, 0);
}

void test_src__sse_c(void)
{
    subtest("event_end gives each event's own bytes", test_event_end);
    struct collected c;
    size_t n = sizeof(input) - 1, bad = 0;

    run_split(n, n, &c);
    is_str(c.out, expected);

    /* every two-way split point, then every three-way split (picohttpparser's approach) */
    for (size_t a = 0; a <= n; ++a)
        for (size_t b = a; b <= n; ++b) {
            pgw_sse_reader_t r;
            pgw_sse_reader_init(&r, 0);
            c.len = 0;
            c.out[0] = '\0';
            pgw_sse_reader_feed(&r, input, a, collect, &c);
            pgw_sse_reader_feed(&r, input + a, b - a, collect, &c);
            pgw_sse_reader_feed(&r, input + b, n - b, collect, &c);
            if (strcmp(c.out, expected) != 0 || !pgw_sse_reader_at_boundary(&r)) {
                if (bad++ == 0)
                    note("split at %zu/%zu gave %s", a, b, c.out);
            }
            pgw_sse_reader_dispose(&r);
        }
    is_int(bad, 0);

    /* byte by byte, checking the boundary as it goes */
    pgw_sse_reader_t r;
    pgw_sse_reader_init(&r, 0);
    c.len = 0;
    const char *two = "event: a\ndata: 1\n\nevent: b\n";
    for (size_t i = 0; two[i] != '\0'; ++i) {
        pgw_sse_reader_feed(&r, two + i, 1, collect, &c);
        if (i == 17)
            ok(pgw_sse_reader_at_boundary(&r)); /* right after the blank line */
    }
    ok(!pgw_sse_reader_at_boundary(&r)); /* "event: b" is pending */
    is_str(c.out, "[a|1]");
    pgw_sse_reader_dispose(&r);

    /* the size limit */
    pgw_sse_reader_init(&r, 8);
    is_int(pgw_sse_reader_feed(&r, "data: 0123456789\n", 17, collect, &c), -1);
    pgw_sse_reader_dispose(&r);
    pgw_sse_reader_init(&r, 8);
    is_int(pgw_sse_reader_feed(&r, "data: 0123456789", 16, collect, &c), -1);
    pgw_sse_reader_dispose(&r);
}
