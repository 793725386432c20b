/* poe-gateway: MIT licence. The one place that writes error bodies: Anthropic's shape, and OpenAI's for the OpenAI-format
 * endpoint. */
#ifndef PGW_ERRORS_H
#define PGW_ERRORS_H

#include <h2o.h>

/**
 * Anthropic error types (https://docs.anthropic.com/en/api/errors). Handlers pick one of these with a status and never
 * format error JSON themselves.
 */
#define PGW_ERR_INVALID_REQUEST "invalid_request_error"
#define PGW_ERR_AUTHENTICATION "authentication_error"
#define PGW_ERR_BILLING "billing_error"
#define PGW_ERR_PERMISSION "permission_error"
#define PGW_ERR_NOT_FOUND "not_found_error"
#define PGW_ERR_REQUEST_TOO_LARGE "request_too_large"
#define PGW_ERR_RATE_LIMIT "rate_limit_error"
#define PGW_ERR_API "api_error"
#define PGW_ERR_OVERLOADED "overloaded_error"
#define PGW_ERR_TIMEOUT "timeout_error"

/**
 * Puts libh2o's own error answers (413 for a body over max_body_bytes, 400 for a body it cannot read, ...), which it
 * writes as text/plain before any handler runs, into the Anthropic shape: a filter on the host's fallback path, where
 * libh2o sends them. Call once per host at start.
 */
void pgw_errors_register(h2o_hostconf_t *hostconf);

/**
 * Replaces every occurrence of `secret` in the NUL-terminated `text` with "[redacted]" (in place, never growing past the
 * original length: a longer marker is cut). Upstreams that quote the key they were given must not hand it to clients.
 */
void pgw_redact(char *text, const char *secret);

/**
 * The same for `len` bytes that need not be NUL-terminated (an event about to be relayed): rewrites them in place and
 * returns their new length (never more than `len`). A secret shorter than 4 bytes, or NULL, redacts nothing.
 */
size_t pgw_redact_bytes(char *bytes, size_t len, const char *secret);

/**
 * The HTTP status that goes with an Anthropic error type when the error arrives without one (an `error` event inside a
 * stream that had not started yet): invalid_request_error 400, ... overloaded_error 529; 502 for api_error, for types it
 * does not know, and for authentication_error (Poe refusing the gateway's key is not the client's credential failing: a
 * 401 would make Claude Code ask its user to log in again).
 */
int pgw_error_status(const char *type);

/**
 * Returns the reason phrase for an HTTP status ("Not Found"); "Error" for statuses it does not know.
 */
const char *pgw_status_reason(int status);

/**
 * Returns `s` (`len` bytes, which may hold NULs) as text to quote in an error message, NUL-terminated in `pool`: control
 * characters written as \u00XX and backslashes doubled, so that a name a client sent shows whole and unambiguous
 * ("model: a\u0000b is not configured") instead of being cut at a NUL or breaking a log line.
 */
const char *pgw_error_quote(h2o_mem_pool_t *pool, const char *s, size_t len);

/**
 * Appends `{"type":"error","error":{"type":type,"message":message}}` to `buf` (message JSON-escaped; invalid UTF-8 is
 * replaced). The building block for both whole error responses and mid-stream `error` events.
 */
void pgw_error_json(h2o_buffer_t **buf, const char *type, const char *message, size_t message_len);

/**
 * Sends a complete JSON error response: status, content-type application/json, the body from pgw_error_json. The
 * message is formatted printf-style. Must be called before the response has started.
 */
void pgw_send_error(h2o_req_t *req, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/**
 * Appends OpenAI's error body, `{"error":{"message":message,"type":type,"param":null,"code":"<status>"}}`, to `buf`: the
 * shape of every error on POST /v1/chat/completions, whose clients are OpenAI clients (the code is the status as a
 * string, as LiteLLM writes it; docs/errors.md#the-error-body). `status` is the HTTP status, or for an error inside a
 * stream the one it would have had.
 */
void pgw_openai_error_json(h2o_buffer_t **buf, int status, const char *type, const char *message, size_t message_len);

/**
 * pgw_send_error in OpenAI's shape when `openai` is non-zero (pgw_openai_error_json), else in Anthropic's.
 */
void pgw_send_error_as(h2o_req_t *req, int openai, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/**
 * Marks the answer about to be sent on `req` as one a retry cannot change (the gateway has no Poe key, Poe refuses the
 * gateway's own key, a route is misconfigured): adds `x-should-retry: false`, which the official SDKs and Claude Code
 * obey, so the message reaches the user at once instead of after minutes of retries (docs/errors.md#retries-that-cannot-help).
 * Call before pgw_send_error (or before the response of an upstream error starts).
 */
void pgw_error_no_retry(h2o_req_t *req);

/**
 * Sends `body` (bytes, copied into the request pool) with the given status and content type, and its length: an
 * HTTP/1.1 connection stays open after it unless something else closes it (req->http1_is_persistent = 0).
 */
void pgw_send_body(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

#endif
