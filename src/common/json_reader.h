/* poe-gateway: MIT licence. A faster reader of whole JSON documents for yajl's callbacks, which leaves to yajl whatever it
 * might read differently. */
#ifndef PGW_JSON_READER_H
#define PGW_JSON_READER_H

#include <stddef.h>
#include <h2o/memory.h>
#include <yajl/yajl_parse.h>

typedef enum en_pgw_json_read_t {
    PGW_JSON_READ_OK = 0,   /* the document was read whole: yajl would have made the same calls and accepted it */
    PGW_JSON_READ_CANCELED, /* a callback returned 0: reading stopped there, as yajl's would have (yajl_status_client_canceled) */
    PGW_JSON_READ_REFUSED,  /* not read to the end: malformed, or something this reader leaves to yajl; the caller reads the
                               document again with yajl, from the start, and gets yajl's verdict and message */
} pgw_json_read_t;

/**
 * Reads the JSON document `json` (one object or array, whitespace around it), calling `cb` as a yajl parser would, in the
 * same order (numbers passed as text to yajl_number, which must be set; yajl_integer and yajl_double must be NULL). A
 * string without escapes is passed as a pointer into `json`, as yajl does; one with escapes is decoded by
 * pgw_json_unescape into `*scratch` (valid until the next callback), which writes a lone surrogate escape differently
 * from yajl (src/common/json.h); with PGW_JSON_READ_YAJL_STRINGS in `flags`, a string with a surrogate escape is
 * refused instead, so that every string passed is the bytes yajl would pass. Before each callback, `*consumed` is what
 * yajl_get_bytes_consumed would return: the offset just past the token reported.
 *
 * The calls made before a callback cancels, or before REFUSED, are the ones yajl would make on the same bytes: this
 * reader accepts a subset of what yajl accepts, whether or not yajl validates strings (JSON's four whitespace bytes
 * only, UTF-8 by RFC 3629, one document, nesting up to PGW_JSON_READ_MAX_DEPTH), so a caller that gets REFUSED and
 * starts again with yajl never sees a call yajl would not make, only some made twice (undo them first).
 */
pgw_json_read_t pgw_json_read(const char *json, size_t len, const yajl_callbacks *cb, void *ctx, h2o_buffer_t **scratch,
                              size_t *consumed, unsigned flags);

#define PGW_JSON_READ_YAJL_STRINGS 1 /* strings decoded exactly as yajl decodes them (see pgw_json_read) */
#define PGW_JSON_READ_MAX_DEPTH 1024

#endif
