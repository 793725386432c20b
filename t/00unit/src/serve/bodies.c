/* poe-gateway: MIT licence. Unit tests for src/serve/bodies.c: what an HTTP/1.x head says about its body, and the head a
 * withheld request is turned into. */
#include <string.h>
#include "../../../../src/serve/bodies.c"
#include "../../test.h"

#define MAX_BODY (32 * 1024 * 1024)

static size_t parse(const char *head, struct phr_header *headers, size_t capacity)
{
    const char *method, *path;
    size_t method_len, path_len, num = capacity;
    int minor;
    int ret = real.parse_request(head, strlen(head), &method, &method_len, &path, &path_len, &minor, headers, &num, 0);
    return ret > 0 ? num : SIZE_MAX;
}

static int body(const char *head, size_t *length)
{
    struct phr_header headers[16];
    size_t num = parse(head, headers, 16);
    *length = 12345;
    return num == SIZE_MAX ? -1 : http1_body(headers, num, MAX_BODY, length);
}

static void test_http1_body(void)
{
    size_t length;
    is_int(body("POST / HTTP/1.1\r\nHost: x\r\n\r\n", &length), 0);
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 29\r\n\r\n", &length), 1);
    is_int(length, 29);
    is_int(body("POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", &length), 0);
    is_int(body("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &length), 1);
    ok(length == SIZE_MAX);
    /* as libh2o frames it: Transfer-Encoding wins wherever it is, and the first Content-Length counts */
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: CHUNKED\r\n\r\n", &length), 1);
    ok(length == SIZE_MAX);
    is_int(body("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", &length), 1);
    ok(length == SIZE_MAX);
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6000\r\n\r\n", &length), 1);
    is_int(length, 5);
    /* what libh2o refuses by itself, before reading: no body to decide on */
    is_int(body("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", &length), 0);
    is_int(body("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &length), 0);
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", &length), 0);
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 33554433\r\n\r\n", &length), 0); /* past max: 413 */
    is_int(body("POST / HTTP/1.1\r\nContent-Length: 33554432\r\n\r\n", &length), 1);
}

static int has(const struct phr_header *headers, size_t num, const char *name, const char *value)
{
    for (size_t i = 0; i != num; ++i)
        if (headers[i].name != NULL && h2o_memis(headers[i].name, headers[i].name_len, name, strlen(name)) &&
            h2o_memis(headers[i].value, headers[i].value_len, value, strlen(value)))
            return 1;
    return 0;
}

static void test_http1_withhold(void)
{
    struct phr_header headers[16];
    size_t num = parse("POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 29\r\nConnection: keep-alive\r\n"
                       "X-A: 1\r\nTransfer-Encoding: chunked\r\nX-B: 2\r\n\r\n",
                       headers, 16);
    is_int(num, 6);
    num = http1_withhold(headers, num);
    is_int(num, 4);
    ok(has(headers, num, "Host", "x"));
    ok(has(headers, num, "X-A", "1"));
    ok(has(headers, num, "X-B", "2"));
    ok(has(headers, num, "connection", "close"));
    size_t length;
    is_int(http1_body(headers, num, MAX_BODY, &length), 0); /* libh2o sees no body */

    /* a continuation line goes with the header it continues; one after a kept header stays */
    num = parse("POST / HTTP/1.1\r\nContent-Length: 29\r\n  more\r\nX-A: 1\r\n  more\r\n\r\n", headers, 16);
    is_int(num, 4);
    num = http1_withhold(headers, num);
    is_int(num, 3);
    ok(has(headers, num, "X-A", "1"));
    ok(headers[1].name == NULL);
    ok(has(headers, num, "connection", "close"));
}

void test_src__bodies_c(void)
{
    pthread_once(&once, init);
    subtest("http1_body", test_http1_body);
    subtest("http1_withhold", test_http1_withhold);
}
