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

/* Escapes one byte that pgw_json_plain8 refuses and is below 0x80; returns the new end of `d`. */
static char *escape_ascii(char *d, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    *d++ = '\\';
    switch (c) {
    case '"':
    case '\\':
        *d++ = (char)c;
        break;
    case '\n':
        *d++ = 'n';
        break;
    case '\r':
        *d++ = 'r';
        break;
    case '\t':
        *d++ = 't';
        break;
    default:
        *d++ = 'u';
        *d++ = '0';
        *d++ = '0';
        *d++ = hex[c >> 4];
        *d++ = hex[c & 15];
        break;
    }
    return d;
}

/* The core of both escapers: copies runs of plain bytes a word at a time, escapes the rest; with `validate`, bytes
 * above 0x7f are checked as UTF-8 and a malformed sequence becomes U+FFFD. Works in chunks so that the reservation
 * (six output bytes per input byte at worst) stays small for long strings. */
static void escape(h2o_buffer_t **buf, const unsigned char *p, const unsigned char *end, int validate)
{
    while (p != end) {
        size_t chunk = end - p < 4096 ? (size_t)(end - p) : 4096;
        h2o_iovec_t dst = h2o_buffer_reserve(buf, chunk * 6);
        char *d = dst.base;
        const unsigned char *stop = p + chunk;
        while (p != stop) {
            const unsigned char *run = p;
            uint64_t w;
            while (stop - p >= 8 && (memcpy(&w, p, 8), pgw_json_plain8(w, validate)))
                p += 8;
            while (p != stop && *p >= 0x20 && *p != '"' && *p != '\\' && (*p < 0x80 || !validate))
                ++p;
            memcpy(d, run, p - run);
            d += p - run;
            if (p == stop)
                break;
            if (*p < 0x80) {
                d = escape_ascii(d, *p++);
                continue;
            }
            /* validate: a UTF-8 sequence, which may run past the chunk */
            size_t n = pgw_utf8_seq_len(p, end - p);
            if (n == 0) {
                memcpy(d, "\xef\xbf\xbd", 3); /* U+FFFD */
                d += 3;
                ++p;
            } else {
                memcpy(d, p, n); /* at most 4 bytes, within the 6 reserved for this byte and the next */
                d += n;
                p += n;
                if (p > stop)
                    stop = p;
            }
        }
        (*buf)->size += d - dst.base;
    }
}

void pgw_json_append_string(h2o_buffer_t **buf, const char *s, size_t len)
{
    pgw_buf_append_lit(buf, "\"");
    escape(buf, (const unsigned char *)s, (const unsigned char *)s + len, 1);
    pgw_buf_append_lit(buf, "\"");
}

void pgw_json_append_escaped(h2o_buffer_t **buf, const char *s, size_t len)
{
    escape(buf, (const unsigned char *)s, (const unsigned char *)s + len, 0);
}

void pgw_json_append_int(h2o_buffer_t **buf, long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);
    pgw_buf_append(buf, tmp, n);
}
