/* poe-gateway: MIT licence. A first look at a Messages request body: valid JSON, and the fields routing needs.
 *
 * Every request body passes here before routing, so this is one hand-written pass rather than yajl callbacks: yajl
 * decodes and validates each string a byte at a time (about 17 instructions a byte on a Claude Code request, a third of
 * all the gateway's work on a pass-through request); here runs of plain string bytes are skipped 32 bytes at a time
 * with AVX2 where the CPU has it, else 16 at a time with SSE2 (every x86-64 has it), else eight at a time in a 64-bit
 * word (skip_plain), containers are tracked on a byte stack, and only the top level's keys are looked at. It accepts exactly RFC 8259 JSON
 * text whose strings are UTF-8 as RFC 3629 defines it (no overlong forms, no encoded surrogates): one value, with
 * whitespace around it. The strings it decodes, an escaped model name or top-level key, go through pgw_json_unescape,
 * the decoder that the translators use too, so that both read the same name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_REQBODY_NO_SIMD) /* fuzz/ builds it without, too */
#include <immintrin.h>
#define PGW_REQBODY_X86 1
#endif
#include "common/json.h"
#include "serve/reqbody.h"

enum { C_PLAIN, C_QUOTE, C_BACKSLASH, C_CONTROL, C_HIGH };

/* the class of each byte inside a string */
static const uint8_t string_class[256] = {
    [0x00 ... 0x1f] = C_CONTROL, ['"'] = C_QUOTE, ['\\'] = C_BACKSLASH, [0x80 ... 0xff] = C_HIGH,
};

enum key { KEY_OTHER, KEY_MODEL, KEY_STREAM, KEY_MESSAGES, KEY_MAX_TOKENS };

struct scan {
    const unsigned char *start, *p, *end;
    int avx2;          /* the CPU has AVX2 */
    const char *error; /* what is wrong, for the message; NULL while all is well */
    uint8_t *stack;    /* one byte per open container: 1 for an object, 0 for an array */
    size_t depth, cap;
    uint8_t small[256];
};

static int fail(struct scan *s, const char *what)
{
    s->error = what;
    return -1;
}

static int push(struct scan *s, uint8_t is_object)
{
    if (s->depth == s->cap) {
        size_t cap = s->cap * 2;
        uint8_t *grown = malloc(cap);
        if (grown == NULL)
            return fail(s, "nested too deeply to check");
        memcpy(grown, s->stack, s->depth);
        if (s->stack != s->small)
            free(s->stack);
        s->stack = grown;
        s->cap = cap;
    }
    s->stack[s->depth++] = is_object;
    return 0;
}

static void skip_space(struct scan *s)
{
    while (s->p != s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        ++s->p;
}

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

#ifdef PGW_REQBODY_X86
/* A mask of the bytes at p..p+15 that end a run of plain string bytes: a quote, a backslash, and (one signed compare)
 * a control character or a byte of 0x80 and above. */
static inline unsigned special16(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                             _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
    return (unsigned)_mm_movemask_epi8(m);
}

__attribute__((target("avx2"))) static const unsigned char *skip_plain_avx2(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)p);
        __m256i m = _mm256_or_si256(
            _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')), _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\'))),
            _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), v));
        unsigned mask = (unsigned)_mm256_movemask_epi8(m);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 32;
    }
    return p;
}
#endif

/* The first byte from p on (p itself included) that is not a plain string byte (C_PLAIN), or end. */
static const unsigned char *skip_plain(const struct scan *s, const unsigned char *p, const unsigned char *end)
{
#ifdef PGW_REQBODY_X86
    if (s->avx2) {
        p = skip_plain_avx2(p, end);
        if (end - p >= 32) /* stopped on a special byte */
            return p;
    }
    while (end - p >= 16) {
        unsigned mask = special16(p);
        if (mask != 0)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#else
    (void)s;
#endif
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        if (!pgw_json_plain8(w, 1))
            break;
        p += 8;
    }
    while (p != end && string_class[*p] == C_PLAIN)
        ++p;
    return p;
}

/* Skips the string that starts at s->p (its opening quote); on return s->p is just past the closing quote. Sets
 * *escaped when the string holds a backslash. */
static int skip_string(struct scan *s, int *escaped)
{
    const unsigned char *p = s->p + 1, *end = s->end;
    *escaped = 0;
    for (;;) {
        p = skip_plain(s, p, end);
        if (p == end) {
            s->p = p;
            return fail(s, "premature EOF");
        }
        switch (string_class[*p]) {
        case C_QUOTE:
            s->p = p + 1;
            return 0;
        case C_BACKSLASH:
            *escaped = 1;
            if (end - p < 2) {
                s->p = end;
                return fail(s, "premature EOF");
            }
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
                if (end - p < 6) {
                    s->p = end;
                    return fail(s, "premature EOF");
                }
                for (int i = 2; i != 6; ++i) {
                    if (!is_hex(p[i])) {
                        s->p = p + i;
                        return fail(s, "invalid (non-hex) character occurs after '\\u' inside string");
                    }
                }
                p += 6;
                break;
            default:
                s->p = p + 1;
                return fail(s, "inside a JSON string, an invalid character was escaped");
            }
            break;
        case C_CONTROL:
            s->p = p;
            return fail(s, "invalid character inside string (control characters must be escaped)");
        default: { /* C_HIGH */
            size_t n = pgw_utf8_seq_len(p, end - p);
            if (n == 0) {
                s->p = p;
                return fail(s, "invalid bytes in UTF8 string");
            }
            p += n;
        } break;
        }
    }
}

static int skip_digits(struct scan *s)
{
    const unsigned char *from = s->p;
    while (s->p != s->end && *s->p >= '0' && *s->p <= '9')
        ++s->p;
    return s->p != from ? 0 : fail(s, s->p == s->end ? "premature EOF" : "malformed number, a digit is required");
}

static int skip_number(struct scan *s)
{
    if (*s->p == '-')
        ++s->p;
    if (s->p != s->end && *s->p == '0')
        ++s->p;
    else if (skip_digits(s) != 0)
        return -1;
    if (s->p != s->end && *s->p == '.') {
        ++s->p;
        if (skip_digits(s) != 0)
            return -1;
    }
    if (s->p != s->end && (*s->p | 0x20) == 'e') {
        ++s->p;
        if (s->p != s->end && (*s->p == '+' || *s->p == '-'))
            ++s->p;
        if (skip_digits(s) != 0)
            return -1;
    }
    return 0;
}

static int skip_literal(struct scan *s, const char *lit, size_t len)
{
    size_t avail = s->end - s->p;
    if (memcmp(s->p, lit, avail < len ? avail : len) != 0)
        return fail(s, "invalid string in json text");
    if (avail < len) {
        s->p = s->end;
        return fail(s, "premature EOF");
    }
    s->p += len;
    return 0;
}

static enum key classify_name(const char *k, size_t len)
{
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, len) == 0)
    return IS("model") ? KEY_MODEL : IS("stream") ? KEY_STREAM : IS("messages") ? KEY_MESSAGES : IS("max_tokens") ? KEY_MAX_TOKENS : KEY_OTHER;
#undef IS
}

/* The top-level key from `key` (its opening quote) to `end` (just past its closing quote). */
static enum key classify(const unsigned char *key, const unsigned char *end, int escaped)
{
    size_t len = end - key - 2;
    if (escaped) {
        /* a key spelt with escapes ("mod\u0065l") is the same key to every JSON parser: decode it (a decoded character
         * takes at least a sixth of its escape, so a longer key is none of those looked for) */
        char buf[6 * 16];
        if (len > sizeof(buf))
            return KEY_OTHER;
        len = pgw_json_unescape((const char *)key + 1, len, buf);
        return classify_name(buf, len);
    }
    return classify_name((const char *)key + 1, len);
}

/* The model string's value into info->model; -1 when it is too long. */
static int take_model(pgw_reqbody_t *info, const unsigned char *str, const unsigned char *end, int escaped)
{
    size_t len = end - str - 2;
    if (escaped) {
        /* a decoded character takes at least a sixth of its escape (\u0041 is A): longer is too long */
        char buf[6 * sizeof(info->model)];
        if (len < sizeof(buf)) {
            len = pgw_json_unescape((const char *)str + 1, len, buf);
            if (len < sizeof(info->model))
                memcpy(info->model, buf, len);
        }
    } else if (len < sizeof(info->model)) {
        memcpy(info->model, str + 1, len);
    }
    if (len >= sizeof(info->model)) {
        info->model[0] = '\0';
        return -1;
    }
    info->model[len] = '\0';
    info->model_len = len;
    return 0;
}

/* The pgw_reqbody_t.given bit of a top-level key, 0 for the keys it does not track. */
static unsigned given_bit(enum key key)
{
    switch (key) {
    case KEY_MODEL:
        return PGW_REQBODY_MODEL;
    case KEY_MESSAGES:
        return PGW_REQBODY_MESSAGES;
    case KEY_MAX_TOKENS:
        return PGW_REQBODY_MAX_TOKENS;
    default:
        return 0;
    }
}

int pgw_reqbody_inspect(const char *body, size_t len, pgw_reqbody_t *info, char *err, size_t errsz)
{
    struct scan s = {(const unsigned char *)body, (const unsigned char *)body, (const unsigned char *)body + len};
    s.stack = s.small;
    s.cap = sizeof(s.small);
#if defined(PGW_REQBODY_X86) && !defined(PGW_REQBODY_NO_AVX2)
    s.avx2 = __builtin_cpu_supports("avx2");
#endif
    enum key key = KEY_OTHER; /* the top-level key whose value comes next */
    int escaped, model_seen = 0, ret = -1;

    memset(info, 0, sizeof(*info));
    if (len == 0) {
        snprintf(err, errsz, "request body is empty; expected a JSON object");
        return -1;
    }
    skip_space(&s);
    if (s.p != s.end && *s.p != '{') {
        snprintf(err, errsz, "request body must be a JSON object");
        return -1;
    }

Value:
    skip_space(&s);
    if (s.p == s.end) {
        fail(&s, "premature EOF");
        goto Error;
    }
    switch (*s.p) {
    case '{':
        ++s.p;
        if (push(&s, 1) != 0)
            goto Error;
        skip_space(&s);
        if (s.p != s.end && *s.p == '}') {
            ++s.p;
            --s.depth;
            goto After;
        }
        goto Key;
    case '[': {
        int top_messages = s.depth == 1 && key == KEY_MESSAGES;
        if (top_messages)
            info->has_messages = 1;
        ++s.p;
        if (push(&s, 0) != 0)
            goto Error;
        skip_space(&s);
        if (top_messages)
            info->no_messages = s.p != s.end && *s.p == ']';
        if (s.p != s.end && *s.p == ']') {
            ++s.p;
            --s.depth;
            goto After;
        }
        goto Value;
    }
    case '"': {
        const unsigned char *str = s.p;
        if (skip_string(&s, &escaped) != 0)
            goto Error;
        if (s.depth == 1 && key == KEY_MODEL) {
            if (take_model(info, str, s.p, escaped) != 0) {
                snprintf(err, errsz, "model: name longer than %zu bytes", sizeof(info->model) - 1);
                goto Exit;
            }
            info->model_offset = str - s.start;
            info->model_end = s.p - s.start;
        }
    } break;
    case 't':
        if (skip_literal(&s, "true", 4) != 0)
            goto Error;
        if (s.depth == 1 && key == KEY_STREAM)
            info->stream = 1;
        break;
    case 'f':
        if (skip_literal(&s, "false", 5) != 0)
            goto Error;
        if (s.depth == 1 && key == KEY_STREAM)
            info->stream = 0;
        break;
    case 'n':
        if (skip_literal(&s, "null", 4) != 0)
            goto Error;
        if (s.depth == 1) /* null counts as absent */
            info->given &= ~given_bit(key);
        break;
    case '-':
    case '0' ... '9':
        if (skip_number(&s) != 0)
            goto Error;
        if (s.depth == 1 && key == KEY_MAX_TOKENS)
            info->has_max_tokens = 1;
        break;
    default:
        fail(&s, "invalid char in json text");
        goto Error;
    }

After:
    skip_space(&s);
    if (s.depth == 0) {
        if (s.p != s.end) {
            fail(&s, "trailing garbage");
            goto Error;
        }
        ret = 0;
        goto Exit;
    }
    if (s.p == s.end) {
        fail(&s, "premature EOF");
        goto Error;
    }
    if (*s.p == ',') {
        ++s.p;
        if (s.stack[s.depth - 1])
            goto Key;
        goto Value;
    }
    if (*s.p == (s.stack[s.depth - 1] ? '}' : ']')) {
        ++s.p;
        --s.depth;
        goto After;
    }
    fail(&s, s.stack[s.depth - 1] ? "after key and value, inside map, I expect ',' or '}'"
                                   : "after array element, I expect ',' or ']'");
    goto Error;

Key:
    skip_space(&s);
    if (s.p == s.end || *s.p != '"') {
        fail(&s, s.p == s.end ? "premature EOF" : "invalid object key (must be a string)");
        goto Error;
    }
    {
        const unsigned char *k = s.p;
        if (skip_string(&s, &escaped) != 0)
            goto Error;
        if (s.depth == 1) {
            key = classify(k, s.p, escaped);
            info->given |= given_bit(key);
            if (key == KEY_MODEL && model_seen) {
                /* JSON parsers disagree on duplicate keys: the gateway and Poe must not read different models */
                snprintf(err, errsz, "model: given more than once");
                goto Exit;
            }
            if (key == KEY_MODEL)
                model_seen = 1;
        }
    }
    skip_space(&s);
    if (s.p == s.end || *s.p != ':') {
        fail(&s, s.p == s.end ? "premature EOF" : "object key and value must be separated by a colon (':')");
        goto Error;
    }
    ++s.p;
    goto Value;

Error:
    snprintf(err, errsz, "request body is not valid JSON: %s (at byte %zu)", s.error, (size_t)(s.p - s.start));
Exit:
    if (s.stack != s.small)
        free(s.stack);
    return ret;
}
