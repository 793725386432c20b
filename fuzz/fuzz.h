/* poe-gateway: MIT licence. What the libFuzzer targets in fuzz/ share: a JSON validity oracle and quiet logs. */
#ifndef PGW_FUZZ_H
#define PGW_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "log.h"

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

/* 1 when `s` is one well-formed JSON document in valid UTF-8 (yajl's default checks). */
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
