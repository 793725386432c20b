/* poe-gateway: MIT licence. What the client gets when Poe answers with an error, on routes of both kinds: the status,
 * Anthropic error type and message, and the headers that go with them (docs/errors.md#upstream-errors). */
#ifndef PGW_UPSTREAM_ERRORS_H
#define PGW_UPSTREAM_ERRORS_H

#include <stddef.h>

struct st_h2o_req_t;
struct st_pgw_route_t;
struct st_pgw_upstream_transfer_t;

/** An upstream failure in Anthropic terms (docs/errors.md#upstream-errors). */
typedef struct st_pgw_upstream_failure_t {
    int status;       /* HTTP status for a JSON error response */
    const char *type; /* Anthropic error type (static string) */
    char message[512];
    int no_retry; /* a retry cannot help (Poe refused the gateway's key, a redirect): x-should-retry: false */
} pgw_upstream_failure_t;

/**
 * Maps an upstream error response (status and body, Poe's or OpenAI's shape) to the client's status, type and
 * message (docs/errors.md#upstream-errors), e.g. 401 -> 502 api_error, 402 -> 402 billing_error, 529/503 -> 529
 * overloaded_error, context overflow -> 400 "prompt is too long: ...". `route` names the route in messages. A `status`
 * below 400 means the error object came inside a 2xx body (a stream's `error` chunk): the status is then taken from
 * error.code or error.type. `secret` (the route's upstream key, or NULL) is redacted from the message, even where the
 * message was cut inside it. Needs no request: the translators call it for errors inside an answer.
 */
void pgw_map_upstream_error(int status, const char *body, size_t len, const char *route, const char *secret,
                            pgw_upstream_failure_t *out);

/**
 * The answer to an error status from Poe (anything but 2xx) on `route`, of either kind: `body` is what arrived of Poe's
 * body (held, possibly cut), `t` the ending transfer, read for its headers. Fills `out` (the route's key redacted) and
 * adds to `req`'s response the headers the client acts on: Poe's Retry-After, or `Retry-After: 1` for a 429 without one;
 * `x-should-retry: false` when out->no_retry (Poe refused the route's key, a redirect).
 * Returns 1 when the answer is the gateway's own whatever Poe's body says (Poe refused the route's key, a redirect, a
 * status that is no error), 0 when it is Poe's error mapped: only then may a route send Poe's own body instead.
 */
int pgw_upstream_error_answer(struct st_h2o_req_t *req, const struct st_pgw_route_t *route, struct st_pgw_upstream_transfer_t *t,
                              int status, const char *body, size_t len, pgw_upstream_failure_t *out);

#endif
