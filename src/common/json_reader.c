/* poe-gateway: MIT licence. A faster reader of whole JSON documents for yajl's callbacks.
 *
 * How it works
 *
 * yajl reads a byte at a time through a lexer built for documents that arrive in pieces: about 17 instructions a byte
 * of a Claude Code request, most of its translation (issue #18). A request's body is whole in memory, so this reader
 * walks it with a pointer: strings are scanned 16 bytes at a time (SSE2, or 8 with the word test of
 * src/common/json.h) for the quote, the backslash and the bytes that need a closer look (control characters, and
 * bytes above 0x7f, checked as UTF-8 by pgw_utf8_seq_len); structure is a loop over one state (a value is expected,
 * or what follows a value) and a stack of the containers open.
 *
 * It never decides differently from yajl: it accepts a subset of what yajl 2.1 accepts, with the same calls. Anything
 * else is REFUSED at once, and the caller reads the whole document again with yajl, which gives the verdict and the
 * message: malformed JSON (rare for a well-behaved client), whitespace yajl also allows (\v, \f), UTF-8 that yajl lets
 * through but RFC 3629 does not (overlong forms, surrogates, code points past U+10FFFF), nesting deeper than
 * PGW_JSON_READ_MAX_DEPTH, and top-level values other than objects and arrays. Numbers follow JSON's grammar, which
 * is yajl's, and must be followed by whitespace or punctuation, as yajl's parser requires of any value.
 */
#include <string.h>
#include "common/json.h"
#include "common/json_reader.h"

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_JSON_READER_NO_SIMD)
#include <emmintrin.h>
#endif

enum { IN_OBJECT, IN_ARRAY };

struct reader {
    const unsigned char *start, *p, *end;
    const yajl_callbacks *cb;
    void *ctx;
    h2o_buffer_t **scratch;
    size_t *consumed;
    unsigned flags;
};

static inline int is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline void skip_space(struct reader *r)
{
    while (r->p != r->end && is_space(*r->p))
        ++r->p;
}

static inline void mark(struct reader *r)
{
    *r->consumed = (size_t)(r->p - r->start);
}

/* The first byte at or after p, before end, that is '"', '\\', a control character or above 0x7f; end when none is. */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_JSON_READER_NO_SIMD)
    const __m128i space = _mm_set1_epi8(0x20), quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    for (; end - p >= 16; p += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)p);
        /* signed: control characters, and every byte above 0x7f */
        __m128i stop = _mm_or_si128(_mm_cmplt_epi8(x, space), _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)));
        int mask = _mm_movemask_epi8(stop);
        if (mask != 0)
            return p + __builtin_ctz((unsigned)mask);
    }
#endif
    uint64_t w;
    while (end - p >= 8 && (memcpy(&w, p, 8), pgw_json_plain8(w, 1)))
        p += 8;
    while (p != end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        ++p;
    return p;
}

static inline int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/*
 * Reads the string whose opening quote r->p is at; leaves r->p past its closing quote and its content in `*s`, `*len`
 * (in the document, or decoded into the scratch buffer). Returns 0 when it is not a string yajl reads the same way.
 */
static int read_string(struct reader *r, const char **s, size_t *len)
{
    const unsigned char *open = ++r->p, *p = open;
    int escapes = 0;

    for (;;) {
        p = skip_plain(p, r->end);
        if (p == r->end)
            return 0;
        if (*p == '"')
            break;
        if (*p == '\\') {
            if (r->end - p < 2)
                return 0;
            switch (p[1]) {
            case '"':
            case '\\':
            case '/':
            case 'b':
            case 'f':
            case 'n':
            case 'r':
            case 't':
                p += 2;
                break;
            case 'u':
                if (r->end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
                    return 0;
                /* \uD800-\uDFFF: yajl pairs a high surrogate with any escape after it, writes a lone one as bytes
                 * that are not UTF-8 or '?' */
                if ((r->flags & PGW_JSON_READ_YAJL_STRINGS) != 0 && (p[2] | 0x20) == 'd' && p[3] >= '8')
                    return 0;
                p += 6;
                break;
            default:
                return 0;
            }
            escapes = 1;
        } else if (*p < 0x20) {
            return 0;
        } else {
            size_t n = pgw_utf8_seq_len(p, (size_t)(r->end - p));
            if (n == 0)
                return 0;
            p += n;
        }
    }
    r->p = p + 1;
    if (!escapes) {
        *s = (const char *)open;
        *len = (size_t)(p - open);
    } else {
        char *dst = h2o_buffer_reserve(r->scratch, (size_t)(p - open) + 1).base;
        *len = pgw_json_unescape((const char *)open, (size_t)(p - open), dst);
        *s = dst;
    }
    return 1;
}

/* Reads the number r->p is at (JSON's grammar, which is yajl's); returns 0 when there is none. */
static int read_number(struct reader *r)
{
    const unsigned char *p = r->p, *end = r->end;

    if (p != end && *p == '-')
        ++p;
    if (p == end)
        return 0;
    if (*p == '0') {
        ++p;
    } else if (*p >= '1' && *p <= '9') {
        while (p != end && *p >= '0' && *p <= '9')
            ++p;
    } else {
        return 0;
    }
    if (p != end && *p == '.') {
        const unsigned char *digits = ++p;
        while (p != end && *p >= '0' && *p <= '9')
            ++p;
        if (p == digits)
            return 0;
    }
    if (p != end && (*p == 'e' || *p == 'E')) {
        ++p;
        if (p != end && (*p == '+' || *p == '-'))
            ++p;
        const unsigned char *digits = p;
        while (p != end && *p >= '0' && *p <= '9')
            ++p;
        if (p == digits)
            return 0;
    }
    /* yajl reads a number up to the byte after it: one at the very end of the document is left to it */
    if (p == end)
        return 0;
    const char *text = (const char *)r->p;
    r->p = p;
    mark(r);
    return r->cb->yajl_number(r->ctx, text, (size_t)(p - (const unsigned char *)text)) ? 1 : -1;
}

/* 1 when r->p is at `lit`, which it then passes */
static int literal(struct reader *r, const char *lit, size_t len)
{
    if ((size_t)(r->end - r->p) < len || memcmp(r->p, lit, len) != 0)
        return 0;
    r->p += len;
    mark(r);
    return 1;
}

/* calls the callback `name` when it is set (yajl skips those that are not); a 0 from it cancels the read */
#define CALL(name, ...)                                                                                                            \
    do {                                                                                                                           \
        if (cb->name != NULL && !cb->name(__VA_ARGS__))                                                                            \
            return PGW_JSON_READ_CANCELED;                                                                                         \
    } while (0)

pgw_json_read_t pgw_json_read(const char *json, size_t len, const yajl_callbacks *cb, void *ctx, h2o_buffer_t **scratch,
                              size_t *consumed, unsigned flags)
{
    struct reader r = {(const unsigned char *)json,
                       (const unsigned char *)json,
                       (const unsigned char *)json + len,
                       cb,
                       ctx,
                       scratch,
                       consumed,
                       flags};
    unsigned char stack[PGW_JSON_READ_MAX_DEPTH];
    size_t depth = 0;
    const char *s;
    size_t slen;

    if (cb->yajl_integer != NULL || cb->yajl_double != NULL || cb->yajl_number == NULL || len == 0)
        return PGW_JSON_READ_REFUSED;
    skip_space(&r);
    if (r.p == r.end || (*r.p != '{' && *r.p != '['))
        return PGW_JSON_READ_REFUSED;

    for (;;) {
        /* a value is expected at r.p (after whitespace) */
        skip_space(&r);
        if (r.p == r.end)
            return PGW_JSON_READ_REFUSED;
        switch (*r.p) {
        case '{':
        case '[': {
            int object = *r.p == '{';
            if (depth == PGW_JSON_READ_MAX_DEPTH)
                return PGW_JSON_READ_REFUSED;
            ++r.p;
            mark(&r);
            if (object)
                CALL(yajl_start_map, ctx);
            else
                CALL(yajl_start_array, ctx);
            stack[depth++] = object ? IN_OBJECT : IN_ARRAY;
            skip_space(&r);
            if (r.p == r.end)
                return PGW_JSON_READ_REFUSED;
            if (*r.p == (object ? '}' : ']'))
                goto Close;
            if (object)
                goto Key;
            continue;
        }
        case '"':
            if (!read_string(&r, &s, &slen))
                return PGW_JSON_READ_REFUSED;
            mark(&r);
            CALL(yajl_string, ctx, (const unsigned char *)s, slen);
            break;
        case 't':
            if (!literal(&r, "true", 4))
                return PGW_JSON_READ_REFUSED;
            CALL(yajl_boolean, ctx, 1);
            break;
        case 'f':
            if (!literal(&r, "false", 5))
                return PGW_JSON_READ_REFUSED;
            CALL(yajl_boolean, ctx, 0);
            break;
        case 'n':
            if (!literal(&r, "null", 4))
                return PGW_JSON_READ_REFUSED;
            CALL(yajl_null, ctx);
            break;
        default: {
            int ret = read_number(&r);
            if (ret == 0)
                return PGW_JSON_READ_REFUSED;
            if (ret < 0)
                return PGW_JSON_READ_CANCELED;
            break;
        }
        }

        /* after a value: a comma, or the end of its container */
    After:
        skip_space(&r);
        if (depth == 0)
            return r.p == r.end ? PGW_JSON_READ_OK : PGW_JSON_READ_REFUSED;
        if (r.p == r.end)
            return PGW_JSON_READ_REFUSED;
        if (*r.p == ',') {
            ++r.p;
            if (stack[depth - 1] == IN_ARRAY)
                continue;
            skip_space(&r);
            goto Key;
        }
        if (*r.p != (stack[depth - 1] == IN_OBJECT ? '}' : ']'))
            return PGW_JSON_READ_REFUSED;
    Close:
        ++r.p;
        mark(&r);
        --depth;
        if (stack[depth] == IN_OBJECT)
            CALL(yajl_end_map, ctx);
        else
            CALL(yajl_end_array, ctx);
        goto After;

        /* a key is expected at r.p, then a colon */
    Key:
        if (r.p == r.end || *r.p != '"' || !read_string(&r, &s, &slen))
            return PGW_JSON_READ_REFUSED;
        mark(&r);
        CALL(yajl_map_key, ctx, (const unsigned char *)s, slen);
        skip_space(&r);
        if (r.p == r.end || *r.p != ':')
            return PGW_JSON_READ_REFUSED;
        ++r.p;
    }
}
