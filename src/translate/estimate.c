/* poe-gateway: MIT licence. The local input-token estimate (docs/mapping.md#the-token-estimate), made to err
 * high. */
#include <string.h>
#include "translate/estimate.h"

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_ESTIMATE_NO_SIMD)
#include <immintrin.h>
#endif

long long pgw_estimate_total(const pgw_estimate_t *e)
{
    long long by_bytes = (long long)((e->text_bytes + PGW_ESTIMATE_BYTES_PER_TOKEN - 1) / PGW_ESTIMATE_BYTES_PER_TOKEN),
              by_shape = (long long)((e->text_units + PGW_ESTIMATE_UNITS_PER_TOKEN - 1) / PGW_ESTIMATE_UNITS_PER_TOKEN);
    return (by_bytes > by_shape ? by_bytes : by_shape) + (long long)e->num_messages * PGW_ESTIMATE_PER_MESSAGE +
           (long long)e->num_tools * PGW_ESTIMATE_PER_TOOL + (long long)e->num_images * PGW_ESTIMATE_PER_IMAGE + e->extra_tokens;
}

/* What a byte is, for the shape of a text; non-ASCII bytes by their place in a UTF-8 sequence. */
enum text_class { PUNCT, LOWER, UPPER, DIGIT, SPACE, LEAD2, LEAD3, LEAD4, CONT, NUM_CLASSES };

static const unsigned char text_classes[256] = {
    ['\t'] = SPACE,          ['\n'] = SPACE,          ['\r'] = SPACE,          [' '] = SPACE,
    ['0' ... '9'] = DIGIT,   ['A' ... 'Z'] = UPPER,   ['a' ... 'z'] = LOWER,   [0x80 ... 0xbf] = CONT,
    [0xc0 ... 0xdf] = LEAD2, [0xe0 ... 0xef] = LEAD3, [0xf0 ... 0xff] = LEAD4,
};

/*
 * What a byte adds, in twelfths of a token, by the class of the byte before it and its own. Measured against GPT-5's
 * tokenizer (o200k) and Claude's published one on prose, code, JSON, lock files, logs, UUIDs, hex, numbers, CJK,
 * Cyrillic and emoji (docs/mapping.md#the-token-estimate):
 *   - a letter starting a word: a token; each further letter a sixth (a word of 4 letters is 1.5 tokens, tokenizers
 *     give common words one); a capital after a lower-case letter starts a new word, as it starts a new token in a
 *     random string or an identifier;
 *   - a digit starting a number: a token; each further digit half of one;
 *   - a space or line break: a quarter (tokenizers join most to the next word); each further one a twelfth;
 *   - punctuation: a token each;
 *   - a non-ASCII character, counted at its first byte by its length: 2 bytes (accents, Cyrillic) 10 twelfths, 3 bytes
 *     (CJK) 1.5 tokens, 4 bytes (emoji, which tokenizers often spell byte by byte) 3 tokens.
 */
/* one row for each class of the byte before */
/* clang-format off */
static const unsigned char text_units[NUM_CLASSES][NUM_CLASSES] = {
    /* the byte before:  this byte is PUNCT, LOWER, UPPER, DIGIT, SPACE, LEAD2, LEAD3, LEAD4, CONT */
    [PUNCT] = {12, 12, 12, 12, 3, 10, 18, 36, 0},
    [LOWER] = {12, 2, 12, 12, 3, 10, 18, 36, 0},
    [UPPER] = {12, 2, 2, 12, 3, 10, 18, 36, 0},
    [DIGIT] = {12, 12, 12, 6, 3, 10, 18, 36, 0},
    [SPACE] = {12, 12, 12, 12, 1, 10, 18, 36, 0},
    [LEAD2] = {12, 12, 12, 12, 3, 10, 18, 36, 0},
    [LEAD3] = {12, 12, 12, 12, 3, 10, 18, 36, 0},
    [LEAD4] = {12, 12, 12, 12, 3, 10, 18, 36, 0},
    [CONT] = {12, 12, 12, 12, 3, 10, 18, 36, 0},
};
/* clang-format on */

/* What the byte after one of class `prev` adds, and so on to `end`: the plain loop, one table lookup a byte and no branch
 * on the text. The vector path below must count exactly as this does (t/00unit/src/translate/estimate.c compares them). */
static unsigned long long shape_units(const unsigned char *p, const unsigned char *end, unsigned prev)
{
    unsigned long long units = 0;
    for (; p != end; ++p) {
        unsigned cls = text_classes[*p];
        units += text_units[prev][cls];
        prev = cls;
    }
    return units;
}

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_ESTIMATE_NO_SIMD)
/* 0xff where the byte of `x` is in [lo, lo + n), unsigned */
static inline __m128i in_range(__m128i x, unsigned char lo, unsigned char n)
{
    return _mm_cmplt_epi8(_mm_add_epi8(x, _mm_set1_epi8((char)(0x80 - lo))), _mm_set1_epi8((char)(0x80 + n)));
}

/*
 * The same count, 16 bytes at a time: the table above, written as what a byte adds by its own class (12 for
 * punctuation, letters and digits, 3 for a space, 10, 18 or 36 for a UTF-8 lead byte, 0 for a continuation byte) less
 * what it saves by the class of the byte before (10 for a letter continuing a word, 6 for a digit continuing a number,
 * 2 for a space after a space). Byte i's class and byte i - 1's come from two overlapping loads. Bytes [1, len) are
 * counted, in whole blocks of 16; returns how many, with their units in `*units`. The first byte, whose "byte before"
 * is the caller's, and the tail are the plain loop's.
 */
static size_t shape_units_sse2(const unsigned char *p, size_t len, unsigned long long *units)
{
    const __m128i zero = _mm_setzero_si128();
    __m128i sums = zero;
    size_t i = 1;

    for (; i + 16 <= len; i += 16) {
        __m128i cur = _mm_loadu_si128((const __m128i *)(p + i)), prev = _mm_loadu_si128((const __m128i *)(p + i - 1));
        __m128i cur_lower = in_range(cur, 'a', 26), cur_upper = in_range(cur, 'A', 26), cur_digit = in_range(cur, '0', 10);
        __m128i prev_lower = in_range(prev, 'a', 26), prev_upper = in_range(prev, 'A', 26), prev_digit = in_range(prev, '0', 10);
        __m128i cur_space =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(cur, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(cur, _mm_set1_epi8('\n'))),
                         _mm_or_si128(_mm_cmpeq_epi8(cur, _mm_set1_epi8('\t')), _mm_cmpeq_epi8(cur, _mm_set1_epi8('\r'))));
        __m128i prev_space =
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(prev, _mm_set1_epi8(' ')), _mm_cmpeq_epi8(prev, _mm_set1_epi8('\n'))),
                         _mm_or_si128(_mm_cmpeq_epi8(prev, _mm_set1_epi8('\t')), _mm_cmpeq_epi8(prev, _mm_set1_epi8('\r'))));
        /* ASCII: 12, or 3 for a space */
        __m128i ascii = _mm_sub_epi8(_mm_set1_epi8(12), _mm_and_si128(cur_space, _mm_set1_epi8(9)));
        /* above 0x7f (negative as signed bytes): 0 from 0x80, +10 from 0xc0, +8 from 0xe0, +18 from 0xf0 */
        __m128i high = _mm_cmplt_epi8(cur, zero);
        __m128i lead = _mm_add_epi8(_mm_add_epi8(_mm_and_si128(_mm_cmpgt_epi8(cur, _mm_set1_epi8((char)0xbf)), _mm_set1_epi8(10)),
                                                 _mm_and_si128(_mm_cmpgt_epi8(cur, _mm_set1_epi8((char)0xdf)), _mm_set1_epi8(8))),
                                    _mm_and_si128(_mm_cmpgt_epi8(cur, _mm_set1_epi8((char)0xef)), _mm_set1_epi8(18)));
        __m128i own = _mm_or_si128(_mm_andnot_si128(high, ascii), _mm_and_si128(high, lead));
        /* what continuing a word, a number or a run of spaces saves */
        __m128i word =
            _mm_or_si128(_mm_and_si128(cur_lower, _mm_or_si128(prev_lower, prev_upper)), _mm_and_si128(cur_upper, prev_upper));
        __m128i saved = _mm_or_si128(_mm_or_si128(_mm_and_si128(word, _mm_set1_epi8(10)),
                                                  _mm_and_si128(_mm_and_si128(cur_digit, prev_digit), _mm_set1_epi8(6))),
                                     _mm_and_si128(_mm_and_si128(cur_space, prev_space), _mm_set1_epi8(2)));
        sums = _mm_add_epi64(sums, _mm_sad_epu8(_mm_sub_epi8(own, saved), zero));
    }
    *units = (unsigned long long)_mm_cvtsi128_si64(sums) + (unsigned long long)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums));
    return i - 1;
}

#ifndef PGW_ESTIMATE_NO_AVX2
/* the 16 entries of a nibble table, for _mm256_shuffle_epi8 (which looks up within each 128-bit lane) */
#define NIBBLES(...) _mm256_setr_epi8(__VA_ARGS__, __VA_ARGS__)

/*
 * The same count again, 32 bytes at a time with table lookups (AVX2): a byte's class comes from two lookups, by its high
 * and its low nibble, whose AND has one bit for each range of a class that lies within one high nibble (lower case
 * letters 0x61-0x6f and 0x70-0x7a, ...). That becomes a code, 1 for a lower-case letter, 2 upper-case, 4 digit, 8 space
 * (0 for the rest); for the byte before, an upper-case letter is 3, so that code & code-before is not 0 exactly when the
 * byte continues a word, a number or a run of spaces, and looks up what it saves. What a byte adds by itself comes from
 * its high nibble, less 9 for a space. The codes of the byte before are the block's own, moved one byte over the
 * previous block's last. Same contract as shape_units_sse2.
 */
__attribute__((target("avx2"))) static size_t shape_units_avx2(const unsigned char *p, size_t len, unsigned long long *units)
{
    enum { L1 = 1, L2 = 2, U1 = 4, U2 = 8, D = 16, S1 = 32, S2 = 64 }; /* one bit a range */
    const __m256i by_high = NIBBLES(S1, 0, S2, D, U1, U2, L1, L2, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m256i by_low =
        NIBBLES(D | U2 | L2 | S2, D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2,
                D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2, D | U1 | U2 | L1 | L2,
                D | U1 | U2 | L1 | L2 | S1, U1 | U2 | L1 | L2 | S1, U1 | L1, U1 | L1, U1 | L1 | S1, U1 | L1, U1 | L1);
    const __m256i code_low = NIBBLES(0, 1, 1, 0, 2, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0);  /* L1, L2, U1, U2 */
    const __m256i code_high = NIBBLES(0, 4, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); /* D, S1, S2 (shifted down) */
    const __m256i own_high = NIBBLES(12, 12, 12, 12, 12, 12, 12, 12, 0, 0, 0, 0, 10, 10, 18, 36);
    const __m256i space_less = NIBBLES(0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0); /* by code */
    const __m256i saves = NIBBLES(0, 10, 10, 10, 6, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0);   /* by code & code before */
    const __m256i nibble = _mm256_set1_epi8(0x0f), zero = _mm256_setzero_si256();
    __m256i sums = zero;
    /* the codes of the block before; only its last byte is used: that of p[0] */
    __m256i last = _mm256_set1_epi8((char)((p[0] >= 'a' && p[0] <= 'z')   ? 1
                                           : (p[0] >= 'A' && p[0] <= 'Z') ? 3
                                           : (p[0] >= '0' && p[0] <= '9') ? 4
                                           : text_classes[p[0]] == SPACE  ? 8
                                                                          : 0));
    size_t i = 1;

    for (; i + 32 <= len; i += 32) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i high = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble), low = _mm256_and_si256(x, nibble);
        __m256i ranges = _mm256_and_si256(_mm256_shuffle_epi8(by_high, high), _mm256_shuffle_epi8(by_low, low));
        __m256i code = _mm256_or_si256(_mm256_shuffle_epi8(code_low, _mm256_and_si256(ranges, nibble)),
                                       _mm256_shuffle_epi8(code_high, _mm256_and_si256(_mm256_srli_epi16(ranges, 4), nibble)));
        /* the codes as the byte before: upper-case 3 */
        __m256i before = _mm256_or_si256(code, _mm256_and_si256(_mm256_srli_epi16(code, 1), _mm256_set1_epi8(1)));
        /* each byte's byte before: this block moved up one byte, the previous block's last byte first */
        __m256i moved = _mm256_alignr_epi8(before, _mm256_permute2x128_si256(last, before, 0x21), 15);
        __m256i own = _mm256_sub_epi8(_mm256_shuffle_epi8(own_high, high), _mm256_shuffle_epi8(space_less, code));
        __m256i saved = _mm256_shuffle_epi8(saves, _mm256_and_si256(code, moved));
        sums = _mm256_add_epi64(sums, _mm256_sad_epu8(_mm256_sub_epi8(own, saved), zero));
        last = before;
    }
    __m128i folded = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    *units =
        (unsigned long long)_mm_cvtsi128_si64(folded) + (unsigned long long)_mm_cvtsi128_si64(_mm_unpackhi_epi64(folded, folded));
    return i - 1;
}
#undef NIBBLES
#endif
#endif

void pgw_estimate_add_text(pgw_estimate_t *e, const char *text, size_t len)
{
    if (len == 0)
        return; /* an empty text may come as NULL, where even `p + 0` is undefined */
    const unsigned char *p = (const unsigned char *)text;
    unsigned long long units = text_units[PUNCT][text_classes[p[0]]]; /* a text starts a word */
    size_t done = 1;

#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_ESTIMATE_NO_SIMD)
    /* this runs over every byte of text a request holds, tool schemas included */
    unsigned long long block_units;
#ifndef PGW_ESTIMATE_NO_AVX2
    done += __builtin_cpu_supports("avx2") ? shape_units_avx2(p, len, &block_units) : shape_units_sse2(p, len, &block_units);
#else
    done += shape_units_sse2(p, len, &block_units);
#endif
    units += block_units;
#endif
    units += shape_units(p + done, p + len, text_classes[p[done - 1]]);
    e->text_bytes += len;
    e->text_units += units;
}

static int is_pdf_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\0';
}

static int is_pdf_delimiter(unsigned char c)
{
    return is_pdf_space(c) || c == '/' || c == '<' || c == '>' || c == '[' || c == ']' || c == '(' || c == ')' || c == '{' ||
           c == '}' || c == '%';
}

#define MATCH_WINDOW 32 /* "/Type", some whitespace, "/Page" and the byte after it */

/* Counts "/Type /Page" page objects (not "/Pages" tree nodes) in bytes [0, limit) of `p`, reading up to `end`. */
static size_t count_pages(const unsigned char *p, size_t limit, size_t end)
{
    size_t pages = 0, at = 0;
    const unsigned char *hit;

    while (at < limit && (hit = memmem(p + at, end - at, "/Type", 5)) != NULL && (size_t)(hit - p) < limit) {
        size_t i = hit - p + 5;
        while (i < end && is_pdf_space(p[i]))
            ++i;
        if (i + 6 <= end && memcmp(p + i, "/Page", 5) == 0 && is_pdf_delimiter(p[i + 5]))
            ++pages;
        at = hit - p + 1;
    }
    return pages;
}

/* The value of a base64 digit (standard or URL-safe alphabet), or -1 for padding, white space and anything else. */
static int base64_value(unsigned char c)
{
    return c >= 'A' && c <= 'Z'   ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+' || c == '-' ? 62
           : c == '/' || c == '_' ? 63
                                  : -1;
}

long long pgw_estimate_pdf(const char *base64, size_t len)
{
    unsigned char chunk[4096 + MATCH_WINDOW];
    size_t filled = 0, decoded = 0, pages = 0;
    unsigned acc = 0, bits = 0;

    for (size_t i = 0; i != len; ++i) {
        int v = base64_value((unsigned char)base64[i]);
        if (v < 0)
            continue; /* padding, line breaks, garbage */
        acc = (acc << 6) | (unsigned)v;
        if ((bits += 6) < 8)
            continue;
        bits -= 8;
        chunk[filled++] = (unsigned char)(acc >> bits);
        ++decoded;
        if (filled == sizeof(chunk)) {
            /* a match may straddle chunks: scan all but the window, which moves to the front */
            pages += count_pages(chunk, filled - MATCH_WINDOW, filled);
            memmove(chunk, chunk + filled - MATCH_WINDOW, MATCH_WINDOW);
            filled = MATCH_WINDOW;
        }
    }
    pages += count_pages(chunk, filled, filled);

    if (pages == 0)
        pages = (decoded + PGW_ESTIMATE_PDF_BYTES_PER_PAGE - 1) / PGW_ESTIMATE_PDF_BYTES_PER_PAGE;
    if (pages == 0)
        pages = 1;
    return (long long)pages * PGW_ESTIMATE_PER_PDF_PAGE;
}
