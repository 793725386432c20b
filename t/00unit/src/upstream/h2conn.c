/* poe-gateway: MIT licence. Unit tests for src/upstream/h2conn.c: DATA frames sized to TLS records, the request body
 * taken from its parts, request headers converted, and what a stream's end means (the connection itself is tested end
 * to end, against the mock Poe and nginx). */
#include <string.h>
#include "../../../../src/upstream/h2conn.c"
#include "../../test.h"

static int engaged;
static void on_engaged(pgw_attempt_t *a)
{
    (void)a;
    ++engaged;
}
static const pgw_attempt_callbacks_t callbacks = {.engaged = on_engaged};

/* A 49.5 KB body in three parts goes out as DATA frames that each fill at most one TLS record (16,384 bytes, frame
 * header included), carrying the parts' bytes in order; the last one ends the stream. */
static void test_data_frames(void)
{
    static char body[50688];
    for (size_t i = 0; i != sizeof(body); ++i)
        body[i] = (char)('a' + i % 23);
    pgw_attempt_t a = {.cb = &callbacks, .url = "https://poe.test/v1/messages", .method = "POST"};
    a.body[0] = h2o_iovec_init(body, 1000);
    a.body[1] = h2o_iovec_init(body + 1000, 24); /* a spliced part, as the pass-through's model */
    a.body[2] = h2o_iovec_init(body + 1024, sizeof(body) - 1024);
    a.body_len = sizeof(body);
    a.headers = curl_slist_append(NULL, "Content-Type: application/json");

    pgw_h2conn_t conn;
    memset(&conn, 0, sizeof(conn));
    h2o_linklist_init_anchor(&conn.pending);
    h2o_linklist_init_anchor(&conn.streams);
    conn.state = CS_READY;
    ok(session_start(&conn) == 0);
    pgw_h2stream_t *st = h2o_mem_alloc(sizeof(*st));
    memset(st, 0, sizeof(*st));
    st->conn = &conn;
    st->a = &a;
    st->authority = "poe.test";
    st->path = "/v1/messages";
    st->content_length = -1;
    ++conn.num_streams;
    h2o_linklist_insert(&conn.pending, &st->link);
    engaged = 0;
    submit(st);
    is_int(st->id, 1);
    is_int(engaged, 1);

    h2o_buffer_t *wire;
    h2o_buffer_init(&wire, &h2o_socket_buffer_prototype);
    const uint8_t *p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(conn.session, &p)) > 0)
        buf_append(&wire, p, (size_t)n);
    ok(n == 0);
    ok(wire->size > 24 && memcmp(wire->bytes, NGHTTP2_CLIENT_MAGIC, 24) == 0);

    size_t off = 24, got = 0, data_frames = 0, too_big = 0;
    int ended = 0, in_order = 1;
    while (off + 9 <= wire->size) {
        const uint8_t *h = (const uint8_t *)wire->bytes + off;
        size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
        if (h[3] == NGHTTP2_DATA) {
            ++data_frames;
            if (9 + len > 16384)
                ++too_big;
            if (got + len > sizeof(body) || memcmp(h + 9, body + got, len) != 0)
                in_order = 0;
            got += len;
            if (h[4] & NGHTTP2_FLAG_END_STREAM)
                ended = 1;
        }
        off += 9 + len;
    }
    is_int(off, wire->size);
    is_int(got, sizeof(body));
    ok(in_order);
    is_int(too_big, 0);
    is_int(data_frames, (sizeof(body) + PGW_H2CONN_DATA_PAYLOAD_MAX - 1) / PGW_H2CONN_DATA_PAYLOAD_MAX);
    ok(ended);
    ok(pgw_h2stream_body_sent(st));

    h2o_buffer_dispose(&wire);
    nghttp2_session_del(conn.session);
    free(st);
    curl_slist_free_all(a.headers);
}

static void test_headers(void)
{
    struct curl_slist *l = NULL;
    l = curl_slist_append(l, "Content-Type: application/json");
    l = curl_slist_append(l, "X-API-Key:  k  ");
    l = curl_slist_append(l, "Expect:");
    l = curl_slist_append(l, "Host: elsewhere");
    l = curl_slist_append(l, "Connection: keep-alive");
    l = curl_slist_append(l, "Accept-Encoding: identity");
    l = curl_slist_append(l, "not a header");
    nghttp2_nv nv[8];
    char scratch[256];
    int has = 0;
    size_t n = pgw_h2conn_convert_headers(l, nv, 8, scratch, &has);
    is_int(n, 3);
    is_str((const char *)nv[0].name, "content-type");
    ok(nv[0].valuelen == 16 && memcmp(nv[0].value, "application/json", 16) == 0);
    is_str((const char *)nv[1].name, "x-api-key");
    ok(nv[1].valuelen == 1 && nv[1].value[0] == 'k');
    is_str((const char *)nv[2].name, "accept-encoding");
    is_int(has, 0);
    curl_slist_free_all(l);
    l = curl_slist_append(NULL, "Accept: text/event-stream");
    l = curl_slist_append(l, "Content-Length: 5");
    n = pgw_h2conn_convert_headers(l, nv, 8, scratch, &has);
    is_int(n, 2);
    is_int(has, 3);
    curl_slist_free_all(l);
}

static pgw_attempt_result_t end_of(int head_final, int end_stream, int64_t content_length, int64_t received, uint32_t code)
{
    pgw_h2stream_t st;
    char msg[320] = "";
    memset(&st, 0, sizeof(st));
    st.id = 3;
    st.head_final = head_final;
    st.end_stream = end_stream;
    st.content_length = content_length;
    st.received = received;
    return stream_result(&st, code, msg, sizeof(msg));
}

/* A stream is complete only with END_STREAM, or reset with NO_ERROR once its Content-Length has all come */
static void test_stream_result(void)
{
    is_int(end_of(1, 1, -1, 10, NGHTTP2_NO_ERROR), PGW_ATTEMPT_OK);
    is_int(end_of(1, 1, -1, 10, NGHTTP2_CANCEL), PGW_ATTEMPT_OK);
    is_int(end_of(1, 0, 10, 10, NGHTTP2_NO_ERROR), PGW_ATTEMPT_OK);
    is_int(end_of(1, 0, 10, 9, NGHTTP2_NO_ERROR), PGW_ATTEMPT_RETRYABLE);
    is_int(end_of(1, 0, -1, 9, NGHTTP2_NO_ERROR), PGW_ATTEMPT_RETRYABLE);
    is_int(end_of(0, 0, -1, 0, NGHTTP2_REFUSED_STREAM), PGW_ATTEMPT_NEVER_PROCESSED);
    is_int(end_of(1, 0, -1, 0, NGHTTP2_REFUSED_STREAM), PGW_ATTEMPT_RETRYABLE);
    is_int(end_of(0, 0, -1, 0, NGHTTP2_INTERNAL_ERROR), PGW_ATTEMPT_RETRYABLE);
    pgw_h2stream_t st;
    char msg[320];
    memset(&st, 0, sizeof(st));
    st.id = 5;
    st.head_final = 1;
    stream_result(&st, NGHTTP2_PROTOCOL_ERROR, msg, sizeof(msg));
    is_str(msg, "HTTP/2 stream 5 was not closed cleanly: PROTOCOL_ERROR (err 1)");
}

void test_src__h2conn_c(void)
{
    subtest("DATA frames", test_data_frames);
    subtest("request headers", test_headers);
    subtest("a stream's end", test_stream_result);
}
