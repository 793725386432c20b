/* poe-gateway: MIT licence. The local input-token estimate (docs/mapping.md#the-token-estimate), made to err
 * high. */
#include <string.h>
#include "translate/estimate.h"

long long pgw_estimate_total(const pgw_estimate_t *e)
{
    long long by_bytes = (long long)((e->text_bytes + PGW_ESTIMATE_BYTES_PER_TOKEN - 1) / PGW_ESTIMATE_BYTES_PER_TOKEN),
              by_shape = (long long)((e->text_units + PGW_ESTIMATE_UNITS_PER_TOKEN - 1) / PGW_ESTIMATE_UNITS_PER_TOKEN);
    return (by_bytes > by_shape ? by_bytes : by_shape) + (long long)e->num_messages * PGW_ESTIMATE_PER_MESSAGE +
           (long long)e->num_tools * PGW_ESTIMATE_PER_TOOL + (long long)e->num_images * PGW_ESTIMATE_PER_IMAGE + e->extra_tokens;
}

enum text_class { LOWER, UPPER, DIGIT, SPACE, PUNCT, HIGH };

static enum text_class text_class(unsigned char c)
{
    return c >= 0x80                                         ? HIGH
           : c >= 'a' && c <= 'z'                            ? LOWER
           : c >= 'A' && c <= 'Z'                            ? UPPER
           : c >= '0' && c <= '9'                            ? DIGIT
           : c == ' ' || c == '\n' || c == '\t' || c == '\r' ? SPACE
                                                             : PUNCT;
}

/*
 * Measured against GPT-5's tokenizer (o200k) and Claude's published one on prose, code, JSON, lock files, UUIDs, hex,
 * numbers, CJK, Cyrillic and emoji (docs/mapping.md#the-token-estimate), in twelfths of a token:
 *   - a word (a run of letters, or one capital and the lower-case letters after it): a token per 4 letters, rounded up;
 *     a change of case starts a new word, as it starts a new token in a random string;
 *   - a run of digits: a token per 2 digits, rounded up;
 *   - one space or line break: a quarter (tokenizers join most to the next word); a longer run: one, plus one per 16;
 *   - punctuation: a token each;
 *   - a non-ASCII character: 10 twelfths when 2 bytes long (accents, Cyrillic), 1.5 tokens when 3 (CJK), 3 when 4
 *     (emoji, which tokenizers often spell byte by byte).
 */
void pgw_estimate_add_text(pgw_estimate_t *e, const char *text, size_t len)
{
    const unsigned char *p = (const unsigned char *)text, *end = p + len;
    unsigned long long units = 0;

    e->text_bytes += len;
    while (p != end) {
        const unsigned char *run = p;
        enum text_class c = text_class(*p++);
        switch (c) {
        case UPPER:
            while (p != end && text_class(*p) == UPPER)
                ++p;
            if (p - run == 1)
                while (p != end && text_class(*p) == LOWER)
                    ++p;
            units += 12 * (((size_t)(p - run) + 3) / 4);
            break;
        case LOWER:
            while (p != end && text_class(*p) == LOWER)
                ++p;
            units += 12 * (((size_t)(p - run) + 3) / 4);
            break;
        case DIGIT:
            while (p != end && text_class(*p) == DIGIT)
                ++p;
            units += 12 * (((size_t)(p - run) + 1) / 2);
            break;
        case SPACE:
            while (p != end && text_class(*p) == SPACE)
                ++p;
            units += p - run == 1 ? 3 : 12 * (1 + (size_t)(p - run) / 16);
            break;
        case PUNCT:
            units += 12;
            break;
        case HIGH:
            /* counted at the lead byte; continuation bytes (10xxxxxx) add nothing */
            units += *run >= 0xf0 ? 36 : *run >= 0xe0 ? 18 : *run >= 0xc0 ? 10 : 0;
            break;
        }
    }
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
