/* poe-gateway: MIT licence. Unit tests for src/serve/bodies.c: what an HTTP/1.x head says about its body, the head a
 * withheld request is turned into, and the sizing of the buffers an admitted body goes into. */
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

static void on_socket_read(h2o_socket_t *sock, const char *err)
{
}

/* A socket as presize() and size_http2_input() see it: an input holding `size` bytes at `offset` of `capacity` (0: the
 * prototype, empty), reading or not. */
static void fake_socket(h2o_socket_t *sock, size_t capacity, size_t offset, size_t size, int reading)
{
    memset(sock, 0, sizeof(*sock));
    h2o_buffer_init(&sock->input, &h2o_socket_buffer_prototype);
    if (capacity != 0) {
        h2o_buffer_reserve(&sock->input, capacity);
        for (size_t i = 0; i != offset + size; ++i)
            sock->input->bytes[i] = (char)('a' + i % 26);
        sock->input->size = offset + size;
        h2o_buffer_consume(&sock->input, offset);
    }
    sock->_cb.read = reading ? on_socket_read : NULL;
}

static int holds_pattern(h2o_buffer_t *buf, size_t offset)
{
    for (size_t i = 0; i != buf->size; ++i)
        if (buf->bytes[i] != (char)('a' + (offset + i) % 26))
            return 0;
    return 1;
}

static void test_presize(void)
{
    h2o_socket_t sock;
    /* a 50 KB body whose head came with 8 KB: room for the rest and a read's, the bytes kept, in one move */
    fake_socket(&sock, 8192, 0, 8192, 1);
    reservation_t r = {.head = 300, .bytes = 50000, .presize = &sock};
    presizing = &r;
    presize(&r);
    ok(presizing == NULL && r.presize == NULL);
    is_int(sock.input->size, 8192);
    ok(holds_pattern(sock.input, 0));
    ok(sock.input->capacity - sock.input->size >= 50300 - 8192 + READ_ROOM);
    ok(sock.input->capacity <= 2 * (50300 + READ_ROOM)); /* what libh2o's doubling comes to, no more */
    h2o_buffer_dispose(&sock.input);

    /* a socket no longer reading (the body is whole, in a handler that points into the input): left alone */
    fake_socket(&sock, 8192, 0, 8192, 0);
    h2o_buffer_t *before = sock.input;
    r = (reservation_t){.head = 300, .bytes = 50000, .presize = &sock};
    presize(&r);
    ok(sock.input == before && sock.input->capacity == 8192);
    h2o_buffer_dispose(&sock.input);
}

static void test_size_http2_input(void)
{
    h2o_socket_t sock;
    is_int(data_frames_size(0), 0);
    is_int(data_frames_size(1), 1 + 9);
    is_int(data_frames_size(16384), 16384 + 9);
    is_int(data_frames_size(16385), 16385 + 18);

    /* an empty input gets the room for what is expected, up to two frames, without a copy */
    fake_socket(&sock, 0, 0, 0, 1);
    size_http2_input(&sock, 20000);
    ok(sock.input->bytes != NULL && sock.input->capacity >= 20000 + READ_ROOM);
    h2o_buffer_dispose(&sock.input);
    fake_socket(&sock, 0, 0, 0, 1);
    size_http2_input(&sock, 10 * 1024 * 1024);
    ok(sock.input->capacity >= MAX_INPUT_AHEAD + READ_ROOM && sock.input->capacity < 2 * (MAX_INPUT_AHEAD + READ_ROOM));
    h2o_buffer_dispose(&sock.input);

    /* a small input holding a frame's start grows, its bytes kept */
    fake_socket(&sock, 8192, 0, 6000, 1);
    size_http2_input(&sock, 40000);
    is_int(sock.input->size, 6000);
    ok(holds_pattern(sock.input, 0));
    ok(sock.input->capacity - sock.input->size >= MAX_INPUT_AHEAD + READ_ROOM);
    h2o_buffer_dispose(&sock.input);

    /* a big one whose room is used up is not asked for more: that would double it read after read */
    fake_socket(&sock, 131072, 120000, 8000, 1);
    h2o_buffer_t *before = sock.input;
    size_http2_input(&sock, 40000);
    ok(sock.input == before && sock.input->capacity == 131072 && sock.input->size == 8000);
    ok(holds_pattern(sock.input, 120000));
    h2o_buffer_dispose(&sock.input);

    /* nor one that is not reading */
    fake_socket(&sock, 0, 0, 0, 0);
    size_http2_input(&sock, 40000);
    ok(sock.input->bytes == NULL);
}

void test_src__bodies_c(void)
{
    pthread_once(&once, init);
    subtest("http1_body", test_http1_body);
    subtest("http1_withhold", test_http1_withhold);
    subtest("presize", test_presize);
    subtest("size_http2_input", test_size_http2_input);
}
