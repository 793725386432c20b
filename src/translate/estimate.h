/* poe-gateway: MIT licence. The local input-token estimate (docs/mapping.md#the-token-estimate), made to err
 * high. The request translator (src/translate/translate_request.c) counts what it writes into a pgw_estimate_t as it goes, so the
 * estimate costs no second pass over the body; this file only turns the counts into tokens. */
#ifndef PGW_ESTIMATE_H
#define PGW_ESTIMATE_H

#include <stddef.h>

/* gateway choices (docs/mapping.md#the-token-estimate) */
#define PGW_ESTIMATE_BYTES_PER_TOKEN 3        /* ceil(UTF-8 bytes / 3): real tokenizers average 3.5 to 4.5 on prose and code */
#define PGW_ESTIMATE_UNITS_PER_TOKEN 12       /* the text's shape is counted in twelfths of a token (pgw_estimate_add_text) */
#define PGW_ESTIMATE_PER_MESSAGE 4            /* role markers and separators */
#define PGW_ESTIMATE_PER_TOOL 8               /* the function wrapper around each tool's name, description and schema */
#define PGW_ESTIMATE_PER_IMAGE 1500           /* Claude charges about 1,600 for a full-size image; others less */
#define PGW_ESTIMATE_PER_PDF_PAGE 2000        /* text plus the rendered page */
#define PGW_ESTIMATE_PDF_BYTES_PER_PAGE 12000 /* the size guess when no page can be counted */

/**
 * What the model will read, counted while the translated request is written. Text is counted unescaped (the bytes the
 * model sees), except tool schemas and tool-call arguments, which are JSON text. Base64 payloads are never text.
 */
typedef struct st_pgw_estimate_t {
    size_t text_bytes;
    size_t num_messages;
    size_t num_tools;
    size_t num_images;
    long long extra_tokens;        /* counted directly: PDFs */
    unsigned long long text_units; /* the text's shape, in PGW_ESTIMATE_UNITS_PER_TOKEN-ths of a token */
} pgw_estimate_t;

/**
 * Counts `len` bytes of text the model reads: their number, and their shape (words, numbers, spaces, punctuation, and
 * non-ASCII characters by their length in UTF-8), since hashes, ids, numbers and emoji take far more tokens per byte
 * than prose (docs/mapping.md#the-token-estimate). A word cut between two calls counts a little more.
 */
void pgw_estimate_add_text(pgw_estimate_t *e, const char *text, size_t len);

/**
 * The estimate: the larger of ceil(text_bytes / 3) and the text's shape in tokens, + 4 per message + 8 per tool + 1,500
 * per image + extra_tokens.
 */
long long pgw_estimate_total(const pgw_estimate_t *e);

/**
 * Tokens for a base64 PDF: 2,000 per page when pages can be counted (page objects are found in the decoded bytes), else
 * 2,000 per 12 KB of decoded data; never below one page. Invalid base64 characters are skipped. Linear in `len`.
 */
long long pgw_estimate_pdf(const char *base64, size_t len);

#endif
