/* poe-gateway: MIT licence. Small JSON writing helpers shared by handlers and translators. */
#ifndef PGW_JSON_H
#define PGW_JSON_H

#include <string.h>
#include <h2o/memory.h>

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
 * Appends `s` as a quoted JSON string. Control characters, quotes and backslashes are escaped; a byte sequence that is
 * not valid UTF-8 is replaced with U+FFFD, so the output is always valid JSON.
 */
/* The length of the valid UTF-8 sequence at s (1..4; RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF), or 0 when it is malformed or cut short by `avail`. */
size_t pgw_utf8_seq_len(const unsigned char *s, size_t avail);

void pgw_json_append_string(h2o_buffer_t **buf, const char *s, size_t len);

/**
 * Appends a signed integer.
 */
void pgw_json_append_int(h2o_buffer_t **buf, long long v);

#endif
