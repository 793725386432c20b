/* poe-gateway: MIT licence. Unit tests for src/json.c. */
#include <stdio.h>
#include <stdlib.h>
#include <h2o/socket.h>
#include "../../../src/json.c"
#include "../test.h"

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

void test_src__json_c(void)
{
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

    /* long texts: runs of plain bytes are copied a word at a time and the work goes in 4 KB chunks; every special byte at
     * every offset, and multi-byte sequences across the chunk boundaries, come out as the byte-at-a-time reference says */
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
            for (int validate = 0; validate != 2; ++validate) {
                want->size = 0;
                buf->size = 0;
                if (validate) {
                    pgw_buf_append_lit(&want, "\"");
                    reference(&want, text, len, 1);
                    pgw_buf_append_lit(&want, "\"");
                    pgw_json_append_string(&buf, (const char *)text, len);
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
        h2o_buffer_dispose(&want);
        free(text);
    }

    buf->size = 0;
    pgw_json_append_int(&buf, -9223372036854775807LL - 1);
    pgw_buf_append(&buf, "", 1);
    is_str(buf->bytes, "-9223372036854775808");

    h2o_buffer_dispose(&buf);
}
