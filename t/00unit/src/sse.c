/* poe-gateway: MIT licence. Unit tests for src/sse.c: every split of the input gives the same events. */
#include <stdio.h>
#include <string.h>
#include "../../../src/sse.c"
#include "../test.h"

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

void test_src__sse_c(void)
{
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
