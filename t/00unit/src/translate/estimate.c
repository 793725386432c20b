/* poe-gateway: MIT licence. Unit tests for src/translate/estimate.c: the local input-token estimate
 * (docs/mapping.md#the-token-estimate). What the request translator counts is tested with it, in translate_request.c. */
#include <stdio.h>
#include <stdlib.h>
#include <h2o/socket.h>
#include "../../../../src/translate/estimate.c"
#include "translate/translate.h"
#include "../../test.h"

static void test_total(void)
{
    pgw_estimate_t e = {10, 2, 1, 1, 5};
    is_int(pgw_estimate_total(&e), 4 + 8 + 8 + 1500 + 5);
    e = (pgw_estimate_t){0};
    is_int(pgw_estimate_total(&e), 0);
}

/* the shape of a text, in tokens (pgw_estimate_add_text), from an empty estimate */
static long long shape(const char *text)
{
    pgw_estimate_t e = {0};
    pgw_estimate_add_text(&e, text, strlen(text));
    is_int(e.text_bytes, strlen(text));
    return (long long)((e.text_units + PGW_ESTIMATE_UNITS_PER_TOKEN - 1) / PGW_ESTIMATE_UNITS_PER_TOKEN);
}

static void test_shape(void)
{
    is_int(shape(""), 0);
    is_int(shape("hello"), 2);                    /* a token, then a sixth a letter: 20 twelfths */
    is_int(shape("Hello"), 2);                    /* one capital starts the word */
    is_int(shape("HTTPServer"), 3);               /* one word of 10 letters: 30 twelfths */
    is_int(shape("aBcDeF"), 5);                   /* "a", "Bc", "De", "F": a random string's pieces */
    is_int(shape("1234567"), 4);                  /* a token, then half a digit */
    is_int(shape("a b"), 3);                      /* 12 + 3 + 12 */
    is_int(shape("a                 b"), 4);      /* 17 spaces: 3 + 16 twelfths */
    is_int(shape("{}"), 2);                       /* punctuation: a token each */
    is_int(shape("\xc3\xa9"), 1);                 /* a 2-byte character: 10 twelfths */
    is_int(shape("\xe7\xbd\x91\xe5\x85\xb3"), 3); /* two CJK characters: 1.5 each */
    is_int(shape("\xf0\x9f\x9a\x80"), 3);         /* an emoji: 3 */
    /* a UUID: 36 bytes, 12 by bytes / 3, but 28 by its shape (GPT-5's and Claude's tokenizers: about 25) */
    is_int(shape("8d81f84e-76e3-46b6-ad7e-639288eff130"), 28);
    /* the estimate is the larger of the two */
    pgw_estimate_t e = {0};
    pgw_estimate_add_text(&e, H2O_STRLIT("internationalization"));
    is_int(pgw_estimate_total(&e), 7); /* 20 bytes / 3 beats the word's 50 twelfths */
    pgw_estimate_add_text(&e, H2O_STRLIT("{}{}{}{}{}{}{}{}"));
    is_int(pgw_estimate_total(&e), 21); /* 16 punctuation marks and the word: 242 twelfths, more than 36 bytes / 3 */
    /* an empty string may come as NULL (an empty key or value): nothing counted, and no arithmetic on NULL (clang's
     * UBSan, in the fuzz build, reports even NULL + 0) */
    pgw_estimate_add_text(&e, NULL, 0);
    is_int(pgw_estimate_total(&e), 21);
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

static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    if (fp != NULL && fseek(fp, 0, SEEK_END) == 0) {
        long size = ftell(fp);
        rewind(fp);
        buf = malloc(size + 1);
        *len = fread(buf, 1, size, fp);
        buf[*len] = '\0';
    }
    if (fp != NULL)
        fclose(fp);
    return buf;
}

/*
 * Real Claude Code requests (t/assets/token-corpus, made by tools/token-corpus.mjs): the estimate of each, translated for
 * an openai/ route as count_tokens translates it, is never below what GPT-5's tokenizer or Claude's published one
 * counts in the translation (docs/mapping.md#the-token-estimate).
 */
static void test_corpus(void)
{
    size_t len, items = 0;
    char *tsv = slurp("t/assets/token-corpus/counts.tsv", &len), *line, *save = NULL;
    double worst = 1e9;
    ok(tsv != NULL);
    if (tsv == NULL)
        return;
    for (line = strtok_r(tsv, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char file[128], path[256], err[512];
        long long o200k, claude;
        if (line[0] == '#' || sscanf(line, "%127s %lld %lld", file, &o200k, &claude) != 3)
            continue;
        snprintf(path, sizeof(path), "t/assets/token-corpus/%s", file);
        size_t blen;
        char *body = slurp(path, &blen);
        ok(body != NULL);
        if (body == NULL)
            continue;
        h2o_buffer_t *out;
        pgw_translated_t res;
        pgw_translate_opts_t opts = {"gpt-5"};
        h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
        is_int(pgw_translate_request(body, blen, &opts, &out, &res, err, sizeof(err)), 0);
        long long exact = o200k > claude ? o200k : claude;
        ok(res.input_tokens >= exact);
        note("%s: estimate %lld, o200k %lld, claude %lld: x%.2f", file, res.input_tokens, o200k, claude,
             (double)res.input_tokens / exact);
        if ((double)res.input_tokens / exact < worst)
            worst = (double)res.input_tokens / exact;
        pgw_translated_dispose(&res);
        h2o_buffer_dispose(&out);
        free(body);
        ++items;
    }
    ok(items >= 6);
    note("worst estimate / exact over %zu requests: %.3f", items, worst);
    free(tsv);
}

/* What pgw_estimate_add_text's plain loop counts for `len` bytes, and what each vector path counts, differ. */
static int vectors_differ(const unsigned char *p, size_t len)
{
    if (len == 0)
        return 0;
    unsigned long long plain = shape_units(p, p + len, PUNCT);
    pgw_estimate_t e = {0};
    pgw_estimate_add_text(&e, (const char *)p, len);
    int differ = e.text_units != plain || e.text_bytes != len;
#if defined(__x86_64__) && defined(__SSE2__) && !defined(PGW_ESTIMATE_NO_SIMD)
    /* each path on its own, the plain loop doing the first byte and the tail */
    size_t (*const paths[])(const unsigned char *, size_t, unsigned long long *) = {
        shape_units_sse2,
#ifndef PGW_ESTIMATE_NO_AVX2
        __builtin_cpu_supports("avx2") ? shape_units_avx2 : shape_units_sse2,
#endif
    };
    for (size_t i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        unsigned long long units;
        size_t done = 1 + paths[i](p, len, &units);
        units += text_units[PUNCT][text_classes[p[0]]] + shape_units(p + done, p + len, text_classes[p[done - 1]]);
        differ |= units != plain;
    }
#endif
    return differ;
}

/*
 * The vector paths of pgw_estimate_add_text (16 bytes, SSE2; 32 bytes, AVX2) against the plain loop, shape_units, on
 * random texts: every class of byte next to every other, at every length around the block sizes and every alignment,
 * so that words, numbers, runs of spaces and UTF-8 sequences cross the blocks' edges.
 */
static void test_vector(void)
{
    static const char alphabet[] = "aqz`{AQZ@[09/: \n\t\r\f\v\x01\x1f\x7f!\"\\{}\x80\xbf\xc0\xc3\xdf\xe0\xe7\xef\xf0\xf4\xff";
    unsigned char buf[300];
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t mismatches = 0;

    for (size_t round = 0; round != 20000; ++round) {
        size_t off = round % 32, len = (round * 7) % (sizeof(buf) - 32);
        for (size_t i = 0; i != len;) {
            /* runs of one byte, 1 to 6 long, make words, numbers and runs of spaces */
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            unsigned char c = (unsigned char)alphabet[(seed >> 33) % (sizeof(alphabet) - 1)];
            for (size_t run = 1 + (seed >> 20) % 6; run != 0 && i != len; --run)
                buf[off + i++] = c;
        }
        mismatches += vectors_differ(buf + off, len);
    }
    is_int(mismatches, 0);
    /* all 256 bytes after all 256 bytes, at each place of a block and across blocks */
    mismatches = 0;
    for (size_t at = 0; at < 40; at += 3) {
        for (unsigned a = 0; a != 256; ++a) {
            for (unsigned b = 0; b != 256; ++b) {
                memset(buf, 'x', 80);
                buf[at] = (unsigned char)a;
                buf[at + 1] = (unsigned char)b;
                mismatches += vectors_differ(buf, 80);
            }
        }
    }
    is_int(mismatches, 0);
}

void test_src__estimate_c(void)
{
    subtest("total", test_total);
    subtest("shape", test_shape);
    subtest("vector", test_vector);
    subtest("pdf", test_pdf);
    subtest("corpus", test_corpus);
}
