/* poe-gateway: MIT licence. Unit tests for src/translate/estimate.c: the local input-token estimate
 * (docs/mapping.md#the-token-estimate). What the request translator counts is tested with it, in translate_request.c. */
#include <stdlib.h>
#include "../../../../src/translate/estimate.c"
#include "../../test.h"

static void test_total(void)
{
    pgw_estimate_t e = {10, 2, 1, 1, 5};
    is_int(pgw_estimate_total(&e), 4 + 8 + 8 + 1500 + 5);
    e = (pgw_estimate_t){0};
    is_int(pgw_estimate_total(&e), 0);
}

static void test_pdf(void)
{
    /* PDFs: pages counted when page objects show, else a size guess */
    const char *pdf = "%PDF-1.4\n1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >> endobj\n2 0 obj << /Type /Page >> endobj\n"
                      "3 0 obj <</Type/Page/Parent 1 0 R>> endobj\n4 0 obj << /Type /PageLabel >> endobj\n";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t plen = strlen(pdf);
    char *enc = malloc(plen * 2 + 4), *p = enc;
    for (size_t i = 0; i < plen; i += 3) {
        unsigned v = (unsigned char)pdf[i] << 16 | (i + 1 < plen ? (unsigned char)pdf[i + 1] << 8 : 0) |
                     (i + 2 < plen ? (unsigned char)pdf[i + 2] : 0);
        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = i + 1 < plen ? b64[(v >> 6) & 63] : '=';
        *p++ = i + 2 < plen ? b64[v & 63] : '=';
    }
    *p = '\0';
    is_int(pgw_estimate_pdf(enc, strlen(enc)), 2 * 2000);
    /* the same page objects across a chunk boundary of the decoder */
    size_t pad = 4096 - 10, biglen = pad * 4 / 3 + strlen(enc) + 8;
    char *shifted = malloc(biglen);
    memset(shifted, 'A', pad * 4 / 3);
    strcpy(shifted + pad * 4 / 3, enc);
    ok(pgw_estimate_pdf(shifted, strlen(shifted)) >= 2 * 2000);
    free(shifted);
    free(enc);
    /* no page objects: 2,000 per 12 KB, at least one page */
    is_int(pgw_estimate_pdf("JVBERi0x", 8), 2000);
    char *blob = malloc(40001);
    memset(blob, 'Q', 40000);
    blob[40000] = '\0';
    is_int(pgw_estimate_pdf(blob, 40000), 3 * 2000); /* 30,000 bytes decoded */
    free(blob);
}

void test_src__estimate_c(void)
{
    subtest("total", test_total);
    subtest("pdf", test_pdf);
}
