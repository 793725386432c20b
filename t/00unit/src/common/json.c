/* poe-gateway: MIT licence. Unit tests for src/common/json.c. */
#include <stdio.h>
#include <stdlib.h>
#include <h2o/socket.h>
#include <yajl/yajl_parse.h>
#include "../../../../src/common/json.c"
#include "../../test.h"

static const char *quote(h2o_buffer_t **buf, const char *s, size_t len)
{
    (*buf)->size = 0;
    pgw_json_append_string(buf, s, len);
    pgw_buf_append(buf, "", 1);
    return (*buf)->bytes;
}

/* The escapers, one byte at a time, written independently: the reference the word-at-a-time ones must match. */
static void reference(h2o_buffer_t **out, const unsigned char *s, size_t len, int validate)
{
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        char tmp[8];
        if (c == '"' || c == '\\') {
            snprintf(tmp, sizeof(tmp), "\\%c", c);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            snprintf(tmp, sizeof(tmp), "\\%c", c == '\n' ? 'n' : c == '\r' ? 'r' : 't');
        } else if (c < 0x20) {
            snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        } else if (c < 0x80 || !validate) {
            tmp[0] = (char)c, tmp[1] = '\0';
        } else {
            size_t n = pgw_utf8_seq_len(s + i, len - i);
            pgw_buf_append(out, n != 0 ? (const char *)s + i : "\xef\xbf\xbd", n != 0 ? n : 3);
            i += n != 0 ? n : 1;
            continue;
        }
        pgw_buf_append(out, tmp, strlen(tmp));
        ++i;
    }
}

/* pgw_json_unescape of `raw`, NUL-terminated in a static buffer (decoded NULs stay inside it, see the length). */
static const char *unescape(const char *raw, size_t *len)
{
    static char out[256];
    *len = pgw_json_unescape(raw, strlen(raw), out);
    out[*len] = '\0';
    return out;
}

static int on_yajl_string(void *ctx, const unsigned char *s, size_t len)
{
    h2o_buffer_t **buf = ctx;
    pgw_buf_append(buf, s, len);
    return 1;
}

/* yajl's decoding of the string whose content is `raw`, appended to `buf`. */
static void yajl_unescape(h2o_buffer_t **buf, const char *raw, size_t len)
{
    static const yajl_callbacks callbacks = {.yajl_string = on_yajl_string};
    yajl_handle h = yajl_alloc(&callbacks, NULL, buf);
    yajl_parse(h, (const unsigned char *)"\"", 1);
    yajl_parse(h, (const unsigned char *)raw, len);
    yajl_parse(h, (const unsigned char *)"\"", 1);
    yajl_complete_parse(h);
    yajl_free(h);
}

static void test_unescape(void)
{
    size_t n;
    is_str(unescape("plain text", &n), "plain text");
    is_str(unescape("a\\nb\\tc\\rd\\be\\ff\\\"g\\\\h\\/i", &n), "a\nb\tc\rd\be\ff\"g\\h/i");
    is_str(unescape("\\u0041\\u00e9\\u20AC", &n), "A\xc3\xa9\xe2\x82\xac");
    is_str(unescape("\\ud83d\\ude00\\uD83D\\uDE00", &n), "\xf0\x9f\x98\x80\xf0\x9f\x98\x80");
    is_str(unescape("caf\xc3\xa9", &n), "caf\xc3\xa9");
    is_str(unescape("a\\u0000b", &n), "a");
    is_int(n, 3);
    /* lone surrogates become U+FFFD, one each, and nothing after them is lost or paired by mistake */
    is_str(unescape("\\udc00", &n), "\xef\xbf\xbd");
    is_str(unescape("a\\udc00b", &n), "a\xef\xbf\xbd" "b");
    is_str(unescape("\\ud800abc", &n), "\xef\xbf\xbd" "abc");
    is_str(unescape("\\ud800\\u0041", &n), "\xef\xbf\xbd" "A");
    is_str(unescape("\\ud800\\ud800\\udc00", &n), "\xef\xbf\xbd\xf0\x90\x80\x80");
    is_str(unescape("\\udc00\\ud800", &n), "\xef\xbf\xbd\xef\xbf\xbd");
    is_str(unescape("x\\ud800", &n), "x\xef\xbf\xbd");
    is_str(unescape("\\udbff\\udfff", &n), "\xf4\x8f\xbf\xbf");
    /* in place */
    char inplace[] = "\\ud83d\\ude00-\\udc00-\\n";
    n = pgw_json_unescape(inplace, strlen(inplace), inplace);
    ok(n == 10 && memcmp(inplace, "\xf0\x9f\x98\x80-\xef\xbf\xbd-\n", 10) == 0);

    /* random strings of plain bytes, UTF-8, escapes and surrogates: the output is UTF-8 whatever the input, never longer,
     * and where the input holds no surrogate escape it is what yajl decodes */
    static const char *pieces[] = {"a", "Z", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\\n", "\\\"", "\\\\",
                                   "\\/", "\\u0000", "\\u007f", "\\u0080", "\\u07ff", "\\uffff", "\\uFEFF", "\\ud83d\\ude00",
                                   "\\ud800", "\\udfff", "\\uDBFF", "\\uDc00"};
    h2o_buffer_t *raw, *want;
    h2o_buffer_init(&raw, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&want, &h2o_socket_buffer_prototype);
    unsigned seed = 11;
    int invalid = 0, longer = 0, differ = 0, compared = 0;
    for (int round = 0; round != 2000; ++round) {
        raw->size = 0;
        int surrogates = 0;
        for (int i = 0; i != 12; ++i) {
            seed = seed * 1103515245 + 12345;
            size_t k = (seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]));
            surrogates |= k >= 17;
            pgw_buf_append_str(&raw, pieces[k]);
        }
        char *out = malloc(raw->size + 1);
        size_t len = pgw_json_unescape(raw->bytes, raw->size, out);
        longer += len > raw->size;
        for (size_t i = 0; i < len;) {
            size_t m = pgw_utf8_seq_len((const unsigned char *)out + i, len - i);
            if (m == 0) {
                ++invalid;
                break;
            }
            i += m;
        }
        if (!surrogates) {
            want->size = 0;
            yajl_unescape(&want, raw->bytes, raw->size);
            differ += want->size != len || memcmp(pgw_buf_at(want, 0), out, len) != 0;
            ++compared;
        }
        free(out);
    }
    is_int(invalid, 0);
    is_int(longer, 0);
    is_int(differ, 0);
    ok(compared > 100);
    h2o_buffer_dispose(&raw);
    h2o_buffer_dispose(&want);
}

void test_src__json_c(void)
{
    subtest("unescape", test_unescape);

    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);

    is_str(quote(&buf, H2O_STRLIT("plain")), "\"plain\"");
    is_str(quote(&buf, H2O_STRLIT("a\"b\\c\nd\re\tf")), "\"a\\\"b\\\\c\\nd\\re\\tf\"");
    is_str(quote(&buf, "\x01\x1f", 2), "\"\\u0001\\u001f\"");
    is_str(quote(&buf, H2O_STRLIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* invalid UTF-8 becomes U+FFFD, byte by byte: a lone continuation, a truncated sequence, an overlong form, a surrogate */
    is_str(quote(&buf, "\x80", 1), "\"\xef\xbf\xbd\"");
    is_str(quote(&buf, "a\xc3", 2), "\"a\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xf4\x90\x80\x80", 4), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* NUL inside the input is escaped, not a terminator */
    is_str(quote(&buf, "a\0b", 3), "\"a\\u0000b\"");

    /* long texts: runs of plain bytes are copied 16 bytes or a word at a time and the work goes in 4 KB chunks; every special byte
     * at every offset, and multi-byte sequences across the chunk boundaries, come out as the byte-at-a-time reference says */
    {
        static const unsigned char specials[] = {'"', '\\', '\n', '\r', '\t', 0x01, 0x1f, 0x7f, 0xc3, 0xe2, 0xf0, 0xff};
        size_t len = 3 * 4096 + 77;
        unsigned char *text = malloc(len);
        unsigned seed = 7;
        h2o_buffer_t *want;
        h2o_buffer_init(&want, &h2o_socket_buffer_prototype);
        int mismatches = 0;
        for (int round = 0; round != 200; ++round) {
            for (size_t i = 0; i != len; ++i) {
                seed = seed * 1103515245 + 12345;
                unsigned r = (seed >> 16) % 100;
                text[i] = r < 80 ? (unsigned char)('a' + r % 26) : r < 90 ? specials[r % sizeof(specials)] : (unsigned char)(0x80 + r % 64);
            }
            /* some valid sequences astride the chunk boundaries */
            memcpy(text + 4096 - 1 - round % 3, "\xf0\x9f\x98\x80", 4);
            memcpy(text + 8192 - 1 - round % 2, "\xe2\x82\xac", 3);
            for (int validate = 0; validate != 3; ++validate) {
                want->size = 0;
                buf->size = 0;
                if (validate) {
                    /* 1: pgw_json_append_string; 2: pgw_json_append_quoted (no validation), the quotes in its reservations */
                    pgw_buf_append_lit(&want, "\"");
                    reference(&want, text, len, validate == 1);
                    pgw_buf_append_lit(&want, "\"");
                    if (validate == 1)
                        pgw_json_append_string(&buf, (const char *)text, len);
                    else
                        pgw_json_append_quoted(&buf, (const char *)text, len);
                } else {
                    reference(&want, text, len, 0);
                    pgw_json_append_escaped(&buf, (const char *)text, len);
                }
                mismatches += buf->size != want->size || memcmp(buf->bytes, want->bytes, want->size) != 0;
            }
        }
        is_int(mismatches, 0);
        /* the word test itself, for each special byte at each of the eight places */
        int wrong = 0;
        for (int place = 0; place != 8; ++place) {
            for (unsigned c = 0; c != 256; ++c) {
                unsigned char w8[8] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
                w8[place] = (unsigned char)c;
                uint64_t w;
                memcpy(&w, w8, 8);
                int plain = c >= 0x20 && c != '"' && c != '\\';
                wrong += pgw_json_plain8(w, 0) != plain;
                wrong += pgw_json_plain8(w, 1) != (plain && c < 0x80);
            }
        }
        is_int(wrong, 0);
        /* the 16-byte test too: each byte value at each place of a block, after 0 to 15 plain bytes, in both escapers */
        wrong = 0;
        for (size_t lead = 0; lead != 16; ++lead) {
            for (unsigned c = 0; c != 256; ++c) {
                unsigned char t[40];
                memset(t, 'a', sizeof(t));
                t[lead + 16 - 1 - lead % 16] = (unsigned char)c;
                t[lead] = (unsigned char)c;
                for (int validate = 0; validate != 2; ++validate) {
                    want->size = buf->size = 0;
                    reference(&want, t, sizeof(t), validate);
                    if (validate) {
                        escape(&buf, t, t + sizeof(t), 1, 0);
                    } else {
                        pgw_json_append_escaped(&buf, (const char *)t, sizeof(t));
                    }
                    wrong += buf->size != want->size || memcmp(buf->bytes, want->bytes, want->size) != 0;
                }
            }
        }
        is_int(wrong, 0);
        h2o_buffer_dispose(&want);
        free(text);
    }

    buf->size = 0;
    pgw_json_append_int(&buf, -9223372036854775807LL - 1);
    pgw_buf_append(&buf, "", 1);
    is_str(buf->bytes, "-9223372036854775808");

    h2o_buffer_dispose(&buf);
}
