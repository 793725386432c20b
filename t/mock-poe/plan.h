/* poe-gateway: MIT licence. The mock's response plans and the helpers that fill them (plan.c): what mock-poe.c (server,
 * response engine, control API) and poe.c (Poe-shaped defaults) share. */
#ifndef MOCK_POE_PLAN_H
#define MOCK_POE_PLAN_H

#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "h2o.h"

/**
 * A response plan and its progress: status and headers (set on req->res straight away), body chunks, and timing. It is a
 * shared entry of the request pool, so its dispose callback sees every teardown. Handlers fill it; mock-poe.c plays it.
 */
typedef struct st_mock_resp_t mock_resp_t;

struct st_mock_resp_t {
    h2o_generator_t super;
    h2o_req_t *req;
    h2o_iovec_vector_t chunks; /* body pieces, each sent by its own h2o_send; memory from req->pool */
    size_t next_chunk;
    size_t content_length; /* SIZE_MAX: none declared */
    uint64_t delay_ms;
    uint64_t chunk_delay_ms;
    ssize_t cut_after;    /* -1: end normally */
    unsigned counted : 1; /* counts in stats.active and client_aborts (everything but /_mock/) */
    unsigned hang : 1;
    unsigned drop : 1; /* instead of the head, shut the request's connection down */
    unsigned started : 1;
    unsigned done : 1; /* finished by the mock, or abandoned by the client */
    unsigned inflight : 1;
    unsigned stamp : 1; /* write the send time into each chunk's MOCK_STAMP_PLACEHOLDER */
    struct st_mock_timer_t *timer; /* delay_ms and chunk_delay_ms; owned */
    struct st_mock_timer_t *watch; /* HTTP/1 peer watch; owned */
};

/**
 * A chunk of a plan with `stamp` set carries this placeholder (any number of times); just before the chunk is handed to
 * h2o_send, its 19 digits are overwritten with CLOCK_MONOTONIC in nanoseconds, zero-padded. A client on the same host
 * reads the stamp back and knows how long the chunk took to reach it (bench/ uses this through a gateway).
 */
#define MOCK_STAMP_PREFIX "@ts:"
#define MOCK_STAMP_DIGITS 19
#define MOCK_STAMP_PLACEHOLDER MOCK_STAMP_PREFIX "0000000000000000000@"

/* filling a plan (mock-poe.c creates and plays it) */

/**
 * Sets the status and its reason phrase.
 */
void mock_resp_status(mock_resp_t *resp, int status);
/**
 * Adds a response header; `name` must outlive the request (a literal or pool memory), `value` likewise.
 */
void mock_resp_header(mock_resp_t *resp, const char *name, h2o_iovec_t value);
/**
 * Appends a body chunk (pool memory or a literal); each chunk goes out in its own h2o_send.
 */
void mock_resp_chunk(mock_resp_t *resp, h2o_iovec_t chunk);
/**
 * A whole body with content-length, and with `content_type` as its content-type unless that is NULL.
 */
void mock_resp_body(mock_resp_t *resp, const char *content_type, h2o_iovec_t body);
/**
 * A whole JSON body with content-type application/json and content-length.
 */
void mock_resp_json(mock_resp_t *resp, int status, h2o_iovec_t body);

/* small helpers */

uint64_t mock_now_ms(void);
int mock_iovec_is(h2o_iovec_t v, const char *s);
/**
 * printf into the pool; the result is NUL-terminated.
 */
h2o_iovec_t mock_pool_printf(h2o_mem_pool_t *pool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
yajl_gen mock_gen_new(void);
void mock_gen_strn(yajl_gen g, const char *s, size_t len);
void mock_gen_str(yajl_gen g, const char *s);
void mock_gen_kv_str(yajl_gen g, const char *key, const char *value);
void mock_gen_kv_int(yajl_gen g, const char *key, long long value);
void mock_gen_kv_null(yajl_gen g, const char *key);
/**
 * Copies the generated text to the pool and frees the generator.
 */
h2o_iovec_t mock_gen_finish(yajl_gen g, h2o_mem_pool_t *pool);
/**
 * The member `key` of an object, or NULL (also when `obj` is not an object).
 */
yajl_val mock_json_get(yajl_val obj, const char *key);
/**
 * Parses the request body as JSON; NULL when there is none or it is not JSON. Free the result with yajl_tree_free.
 */
yajl_val mock_parse_body(h2o_req_t *req);

#endif
