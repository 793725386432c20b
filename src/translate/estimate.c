/* poe-gateway: MIT licence. The local input-token estimate (docs/mapping.md#the-token-estimate), made to err
 * high. */
#include <string.h>
#include "translate/estimate.h"

long long pgw_estimate_total(const pgw_estimate_t *e)
{
    return (long long)((e->text_bytes + PGW_ESTIMATE_BYTES_PER_TOKEN - 1) / PGW_ESTIMATE_BYTES_PER_TOKEN) +
           (long long)e->num_messages * PGW_ESTIMATE_PER_MESSAGE + (long long)e->num_tools * PGW_ESTIMATE_PER_TOOL +
           (long long)e->num_images * PGW_ESTIMATE_PER_IMAGE + e->extra_tokens;
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
