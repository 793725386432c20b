/* poe-gateway: MIT licence. Small JSON writing helpers shared by handlers and translators. */
#include <stdio.h>
#include <string.h>
#include "json.h"

void pgw_buf_append(h2o_buffer_t **buf, const void *bytes, size_t len)
{
    if (len == 0)
        return;
    h2o_iovec_t dst = h2o_buffer_reserve(buf, len);
    memcpy(dst.base, bytes, len);
    (*buf)->size += len;
}

size_t pgw_utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i != n; ++i) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

void pgw_json_append_string(h2o_buffer_t **buf, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    /* worst case: every byte becomes a 6-byte escape */
    h2o_iovec_t dst = h2o_buffer_reserve(buf, len * 6 + 2);
    char *p = dst.base;
    const unsigned char *in = (const unsigned char *)s, *end = in + len;

    *p++ = '"';
    while (in != end) {
        unsigned char c = *in;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            *p++ = (char)c;
            ++in;
        } else if (c < 0x80) {
            *p++ = '\\';
            switch (c) {
            case '"':
            case '\\':
                *p++ = (char)c;
                break;
            case '\n':
                *p++ = 'n';
                break;
            case '\r':
                *p++ = 'r';
                break;
            case '\t':
                *p++ = 't';
                break;
            default:
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
                break;
            }
            ++in;
        } else {
            size_t n = pgw_utf8_seq_len(in, end - in);
            if (n == 0) {
                memcpy(p, "\xef\xbf\xbd", 3); /* U+FFFD */
                p += 3;
                ++in;
            } else {
                memcpy(p, in, n);
                p += n;
                in += n;
            }
        }
    }
    *p++ = '"';
    (*buf)->size += p - dst.base;
}

void pgw_json_append_int(h2o_buffer_t **buf, long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);
    pgw_buf_append(buf, tmp, n);
}
