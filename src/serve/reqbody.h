/* poe-gateway: MIT licence. A first look at a Messages request body: valid JSON, and the fields routing needs. */
#ifndef PGW_REQBODY_H
#define PGW_REQBODY_H

#include <stddef.h>

typedef struct st_pgw_reqbody_t {
    char model[256];   /* the top-level "model" string, decoded and NUL-terminated; "" when absent */
    size_t model_len;  /* 0 when absent or not a string */
    size_t model_offset; /* offset of the model string's opening quote in the body, for a rename without re-serialising */
    size_t model_end;    /* offset just past its closing quote */
    int stream;          /* top-level "stream": true */
    int has_messages;    /* top-level "messages" is an array */
    int no_messages;     /* ... and an empty one */
    int has_max_tokens;  /* top-level "max_tokens" is a number */
    unsigned given;      /* PGW_REQBODY_* bits: the top-level keys present with a value other than null, of any type */
} pgw_reqbody_t;

/* pgw_reqbody_t.given: so that a value of the wrong type is told apart from a missing one */
#define PGW_REQBODY_MODEL 1
#define PGW_REQBODY_MESSAGES 2
#define PGW_REQBODY_MAX_TOKENS 4

/**
 * Checks `body` in one hand-written pass (no tree, nothing allocated but for nesting past 256 levels) and fills `info`
 * from its top-level keys. Returns 0 when the body is exactly one JSON object (RFC 8259, strings in strict UTF-8, with
 * whitespace around it), or -1 with a client-facing message in `err` when it is empty, not an object, not valid JSON
 * (the message names the byte offset), holds a top-level "model" more than once, or a model name longer than 255 bytes.
 */
int pgw_reqbody_inspect(const char *body, size_t len, pgw_reqbody_t *info, char *err, size_t errsz);

#endif
