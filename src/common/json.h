/* poe-gateway: MIT licence. Small JSON writing helpers shared by handlers and translators. */
#ifndef PGW_JSON_H
#define PGW_JSON_H

#include <stdint.h>
#include <string.h>
#include <h2o/memory.h>
#include <yajl/yajl_common.h>

/**
 * Appends raw bytes to `buf`.
 */
void pgw_buf_append(h2o_buffer_t **buf, const void *bytes, size_t len);

/* `lit` must be a string literal: "" lit "" refuses anything else at compile time */
#define pgw_buf_append_lit(buf, lit) pgw_buf_append((buf), "" lit "", sizeof(lit) - 1)
#define pgw_buf_append_str(buf, s) pgw_buf_append((buf), (s), strlen(s))

/**
 * `buf->bytes + off`, without the undefined NULL + 0 of a buffer that never allocated (its bytes are NULL then).
 */
static inline const char *pgw_buf_at(const h2o_buffer_t *buf, size_t off)
{
    return buf->bytes != NULL ? buf->bytes + off : "";
}

/**
 * The length of the valid UTF-8 sequence at s (1..4; RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF), or 0 when it is malformed or cut short by `avail`.
 */
size_t pgw_utf8_seq_len(const unsigned char *s, size_t avail);

/**
 * 1 when none of the eight bytes in `w` (read with memcpy, any alignment) is a control character, '"' or '\\', nor,
 * when `ascii` is set, above 0x7f: the bytes a JSON string holds as they are. Lets scanners and escapers skip plain text
 * a word at a time (the zero-byte tricks of graphics.stanford.edu/~seander/bithacks.html#ZeroInWord).
 */
static inline int pgw_json_plain8(uint64_t w, int ascii)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t quote = w ^ (ones * '"'), backslash = w ^ (ones * '\\');
    uint64_t bad = ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash);
    if (ascii)
        bad |= w;
    return (bad & highs) == 0;
}

/**
 * Appends `s` as a quoted JSON string. Control characters, quotes and backslashes are escaped; a byte sequence that is
 * not valid UTF-8 is replaced with U+FFFD, so the output is always valid JSON.
 */
void pgw_json_append_string(h2o_buffer_t **buf, const char *s, size_t len);

/**
 * Appends `s`, which must be valid UTF-8 already (a parser checked it, or the gateway wrote it), as the content of a
 * JSON string, without quotes: only control characters, quotes and backslashes change.
 */
void pgw_json_append_escaped(h2o_buffer_t **buf, const char *s, size_t len);

/**
 * pgw_json_append_escaped between quotes: `s` as a quoted JSON string, `s` valid UTF-8 already.
 */
void pgw_json_append_quoted(h2o_buffer_t **buf, const char *s, size_t len);

/**
 * Decodes the content of a JSON string (the bytes between its quotes, as written) into `dst`, which may be `src` itself
 * and needs room for `len` bytes: decoding never lengthens. Returns the decoded length. Escapes become their characters;
 * \uXXXX becomes UTF-8, a surrogate pair one code point, and a lone surrogate (a high one not followed by a low one's
 * escape, or a low one alone) U+FFFD, since it has no UTF-8 form (yajl 2.1 writes a lone low surrogate as the three
 * bytes ED B0 80, which are not UTF-8, turns a lone high one into '?' and pairs a high one with any escape after it).
 * Other bytes are copied as they are: the input is expected to be a valid JSON string, checked by a parser.
 */
size_t pgw_json_unescape(const char *src, size_t len, char *dst);

/**
 * Appends a signed integer.
 */
void pgw_json_append_int(h2o_buffer_t **buf, long long v);

/**
 * Allocation functions for yajl parsers that abort when memory runs out, as h2o_mem_alloc does, so that no caller checks
 * for NULL (yajl's own return it, and yajl does not check). yajl_alloc copies them: one set serves every parser.
 */
extern yajl_alloc_funcs pgw_yajl_alloc_funcs;

#endif
