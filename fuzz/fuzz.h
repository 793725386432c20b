/* poe-gateway: MIT licence. What the libFuzzer targets in fuzz/ share: a JSON validity oracle and quiet logs. */
#ifndef PGW_FUZZ_H
#define PGW_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "common/log.h"

/* A broken invariant (as opposed to a sanitizer report): print why and abort, so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond, ...)                                                                                                     \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s: ", __FILE__, __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                                                                          \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* 1 when all of s is well-formed UTF-8 (Unicode, table 3-7), written independently of src/common/json.c */
static inline int fuzz_utf8_strict(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned c = s[i], lo = 0x80, hi = 0xbf;
        size_t n;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            if (c == 0xf4)
                hi = 0x8f;
        } else {
            return 0;
        }
        if (len - i <= n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= n; ++k)
            if (s[i + k] < 0x80 || s[i + k] > 0xbf)
                return 0;
        i += n + 1;
    }
    return 1;
}

/* 1 when s holds a \u escape of a surrogate (\ud800 to \udfff), which yajl 2.1 decodes wrongly */
static inline int fuzz_has_surrogate_escape(const char *s, size_t len)
{
    for (size_t i = 0; i + 3 < len; ++i)
        if (s[i] == '\\' && s[i + 1] == 'u' && (s[i + 2] | 0x20) == 'd' && strchr("89abcdefABCDEF", s[i + 3]) != NULL && s[i + 3] != '\0')
            return 1;
    return 0;
}

/* 1 when `s` is one well-formed JSON document (yajl's default checks; they let overlong forms and encoded surrogates
 * through, see fuzz_utf8_strict). */
static inline int fuzz_json_valid(const char *s, size_t len)
{
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    int ok = yajl_parse(h, (const unsigned char *)s, len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

/*
 * 1 when the environment variable FUZZ_ALLOW (a comma-separated list) names `finding`: a known, reported bug whose
 * invariant check is then skipped, so that a long run can look for other bugs. Regression replays never set it.
 */
static inline int fuzz_allowed(const char *finding)
{
    const char *list = getenv("FUZZ_ALLOW");
    size_t n = strlen(finding);
    for (const char *p = list; p != NULL && (p = strstr(p, finding)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

/* Warnings about skipped input would flood the fuzzer's output: only errors are logged. */
static inline void fuzz_quiet_logs(void)
{
    pgw_log_level = PGW_LOG_ERROR;
}

/* Reads the little-endian byte at `*pos` of a prefix, or 0 past the end; advances. */
static inline uint8_t fuzz_take(const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    uint8_t b = **data;
    ++*data;
    --*size;
    return b;
}

#endif
