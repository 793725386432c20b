/* poe-gateway: MIT licence. The tool-schema cleaner (docs/mapping.md#tool-schemas): copies a tool's input_schema as the
 * request translator's parser reports it, event by event, leaving out what upstreams refuse. */
#ifndef PGW_TRANSLATE_SCHEMA_H
#define PGW_TRANSLATE_SCHEMA_H

#include <stddef.h>
#include <h2o/memory.h>

/** The deepest schema the copier follows; its caller refuses deeper JSON before it gets here. */
#define PGW_SCHEMA_MAX_DEPTH 512

/**
 * One schema being copied. The caller's parser drives it: pgw_schema_begin at the schema's '{', then every key, scalar,
 * opening and closing inside it, until pgw_schema_close says the schema's own object closed. Plain memory: nothing to
 * dispose.
 */
typedef struct st_pgw_schema_copier_t {
    int active;  /* 1 from pgw_schema_begin until the schema's object closes */
    int minimal; /* only type, properties, required and items are kept */
    h2o_buffer_t **out;
    int drop_next;       /* the next value is left out (its key was) */
    int pending_pattern; /* a "pattern" key waits for its value, written only when ECMA-262 can compile it */
    size_t depth;
    unsigned char next; /* the mode of the next value of an object */
    unsigned char flags[PGW_SCHEMA_MAX_DEPTH + 2];
} pgw_schema_copier_t;

/**
 * Starts copying a schema whose opening '{' the parser has just reported: writes it to `*out` (which must stay valid
 * until the copy ends), and keeps at each level only type, properties, required and items when `minimal` is set.
 */
void pgw_schema_begin(pgw_schema_copier_t *c, h2o_buffer_t **out, int minimal);

/**
 * An object (`is_object`) or an array opens inside the schema. Returns 0 when it is copied (its contents and its close
 * are to be passed on), 1 when it is left out: the caller then skips it whole, passing nothing of it, not even its
 * close.
 */
int pgw_schema_open(pgw_schema_copier_t *c, int is_object);

/** An object's key, decoded. */
void pgw_schema_key(pgw_schema_copier_t *c, const char *key, size_t len);

/** A scalar: a decoded string when `is_string`, else the literal as it appears (a number, true, false or null). */
void pgw_schema_scalar(pgw_schema_copier_t *c, int is_string, const char *v, size_t len);

/** An object or array the copier opened closes. Returns 1 when it was the schema's own object: the copy is complete. */
int pgw_schema_close(pgw_schema_copier_t *c);

#endif
