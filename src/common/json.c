/* poe-gateway: MIT licence. Small JSON writing helpers shared by handlers and translators. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/json.h"

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_JSON_NO_SIMD)
#include <emmintrin.h>
#endif

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

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_JSON_NO_SIMD)
/* The first byte in [p, stop) that pgw_json_plain8 would refuse, looking 16 bytes at a time; stops early (at a byte
 * the caller looks at again) when fewer than 16 are left. */
static const unsigned char *skip_plain16(const unsigned char *p, const unsigned char *stop, int validate)
{
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    for (; stop - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        __m128i bad = _mm_cmplt_epi8(x, space); /* signed: control characters, and every byte above 0x7f */
        if (!validate)
            bad = _mm_andnot_si128(_mm_cmplt_epi8(x, _mm_setzero_si128()), bad);
        bad = _mm_or_si128(bad, _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)));
        int mask = _mm_movemask_epi8(bad);
        if (mask != 0)
            return p + __builtin_ctz((unsigned)mask);
    }
    return p;
}
#endif

/* The core of the escapers: copies runs of plain bytes 16 bytes (SSE2) or a word at a time, escapes the rest; with
 * `validate`, bytes above 0x7f are checked as UTF-8 and a malformed sequence becomes U+FFFD; with `quote`, the quotes
 * around, in the same reservations. Works in chunks so that the reservation (six output bytes per input byte at worst)
 * stays small for long strings. */
static void escape(h2o_buffer_t **buf, const unsigned char *p, const unsigned char *end, int validate, int quote)
{
    do {
        size_t chunk = end - p < 4096 ? (size_t)(end - p) : 4096;
        h2o_iovec_t dst = h2o_buffer_reserve(buf, chunk * 6 + 2);
        char *d = dst.base;
        const unsigned char *stop = p + chunk;
        if (quote == 1) {
            *d++ = '"';
            quote = 2; /* the closing one is due */
        }
        while (p != stop) {
            const unsigned char *run = p;
            uint64_t w;
#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_JSON_NO_SIMD)
            /* it stops at the byte to escape, or short of the last 16 bytes */
            if (stop - (p = skip_plain16(p, stop, validate)) < 16)
#endif
            {
                while (stop - p >= 8 && (memcpy(&w, p, 8), pgw_json_plain8(w, validate)))
                    p += 8;
                while (p != stop && *p >= 0x20 && *p != '"' && *p != '\\' && (*p < 0x80 || !validate))
                    ++p;
            }
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
        if (quote == 2 && p == end)
            *d++ = '"';
        (*buf)->size += d - dst.base;
    } while (p != end);
}

void pgw_json_append_string(h2o_buffer_t **buf, const char *s, size_t len)
{
    escape(buf, (const unsigned char *)s, (const unsigned char *)s + len, 1, 1);
}

void pgw_json_append_escaped(h2o_buffer_t **buf, const char *s, size_t len)
{
    if (len != 0)
        escape(buf, (const unsigned char *)s, (const unsigned char *)s + len, 0, 0);
}

void pgw_json_append_quoted(h2o_buffer_t **buf, const char *s, size_t len)
{
    escape(buf, (const unsigned char *)s, (const unsigned char *)s + len, 0, 1);
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of the \uXXXX escape at s, or -1 when there is none there. */
static long escape_unit(const unsigned char *s, const unsigned char *end)
{
    long unit = 0;
    if (end - s < 6 || s[0] != '\\' || s[1] != 'u')
        return -1;
    for (int i = 2; i != 6; ++i) {
        int v = hex_value(s[i]);
        if (v < 0)
            return -1;
        unit = unit << 4 | v;
    }
    return unit;
}

static char *put_utf8(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xc0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xe0 | cp >> 12);
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *d++ = (char)(0xf0 | cp >> 18);
        *d++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    }
    return d;
}

size_t pgw_json_unescape(const char *src, size_t len, char *dst)
{
    const unsigned char *p = (const unsigned char *)src, *end = p + len;
    char *d = dst;
    while (p != end) {
        const unsigned char *bs = memchr(p, '\\', end - p);
        if (bs == NULL)
            bs = end;
        memmove(d, p, bs - p);
        d += bs - p;
        p = bs;
        if (p == end)
            break;
        if (end - p == 1) { /* not a JSON string: copied as it is */
            *d++ = '\\';
            break;
        }
        switch (p[1]) {
        case 'b':
            *d++ = '\b';
            break;
        case 'f':
            *d++ = '\f';
            break;
        case 'n':
            *d++ = '\n';
            break;
        case 'r':
            *d++ = '\r';
            break;
        case 't':
            *d++ = '\t';
            break;
        case 'u': {
            long unit = escape_unit(p, end), low;
            if (unit < 0) { /* not a JSON string: copied as it is */
                *d++ = '\\';
                ++p;
                continue;
            }
            if (unit >= 0xd800 && unit <= 0xdbff && (low = escape_unit(p + 6, end)) >= 0xdc00 && low <= 0xdfff) {
                d = put_utf8(d, 0x10000 + ((unsigned long)(unit - 0xd800) << 10) + (unsigned long)(low - 0xdc00));
                p += 12;
                continue;
            }
            /* a lone surrogate has no UTF-8 form */
            d = put_utf8(d, unit >= 0xd800 && unit <= 0xdfff ? 0xfffd : (unsigned long)unit);
            p += 6;
            continue;
        }
        default: /* '"', '\\', '/', and what a JSON string cannot hold */
            *d++ = (char)p[1];
            break;
        }
        p += 2;
    }
    return d - dst;
}

void pgw_json_append_int(h2o_buffer_t **buf, long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", v);
    pgw_buf_append(buf, tmp, n);
}

static void *yajl_malloc_cb(void *ctx, size_t sz)
{
    return h2o_mem_alloc(sz);
}

static void *yajl_realloc_cb(void *ctx, void *p, size_t sz)
{
    return h2o_mem_realloc(p, sz);
}

static void yajl_free_cb(void *ctx, void *p)
{
    free(p);
}

yajl_alloc_funcs pgw_yajl_alloc_funcs = {yajl_malloc_cb, yajl_realloc_cb, yajl_free_cb, NULL};
