/* poe-gateway: MIT licence. A route's extra_body (litellm_params.extra_body), parsed once when the configuration loads
 * into the form the request translator merges into every translated body (docs/mapping.md#extra-body). */
#ifndef PGW_EXTRA_BODY_H
#define PGW_EXTRA_BODY_H

#include <stddef.h>
#include <h2o/memory.h>

/**
 * The members of an extra_body, in their order. One allocation holds the struct, the array and every byte the members
 * point at: free() releases it, and pgw_extra_body_dup copies it whole.
 */
typedef struct st_pgw_extra_body_t {
    size_t size; /* of the allocation */
    size_t num_members;
    struct st_pgw_extra_member_t {
        h2o_iovec_t name;  /* decoded (what the key means, as it is compared), NUL-terminated */
        h2o_iovec_t value; /* the value's JSON text as written, NUL-terminated */
    } members[];
} pgw_extra_body_t;

/**
 * Parses `members`, JSON object members without the braces (`"thinking_budget":4096,"web_search":true`, as the loader
 * writes extra_body). Returns a new pgw_extra_body_t, or NULL when the text is not JSON object members. An empty text
 * gives no members.
 */
pgw_extra_body_t *pgw_extra_body_parse(const char *members, size_t len);

/** A copy of `x` (one allocation: free() releases it), or NULL when `x` is NULL. */
pgw_extra_body_t *pgw_extra_body_dup(const pgw_extra_body_t *x);

/** 1 when `x` (which may be NULL) has a member called `name`. */
int pgw_extra_body_has(const pgw_extra_body_t *x, const char *name);

/**
 * Appends the members of `x` (which may be NULL) to `*out`, each as `,"name":value`, except `model`, `messages`,
 * `stream` and `stream_options`: a route cannot change what the translation relies on.
 */
void pgw_extra_body_append(const pgw_extra_body_t *x, h2o_buffer_t **out);

#endif
