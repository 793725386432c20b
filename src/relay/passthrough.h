/* poe-gateway: MIT licence. `anthropic/` routes: the request goes to Poe's /v1/messages as it is, but for the key and
 * the model name; the answer comes back byte for byte as it arrives. */
#ifndef PGW_PASSTHROUGH_H
#define PGW_PASSTHROUGH_H

#include "serve/reqbody.h"
#include "serve/request.h"

/**
 * Forwards r's request to `route` (an anthropic/ route with a key) at `{api_base}{path}` and relays the response.
 * `name` is the model name the route is asked for (the client's, or a fallback's): the body's `model` becomes the
 * route's upstream name for it. `body` is the inspected request body. Always answers the client, with the upstream's
 * response or an error, unless the request's fallback takes it on (pgw_relay_hand_off).
 */
void pgw_passthrough_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body,
                           const char *path);

/**
 * The body to send upstream for r's request: the client's, with the value of its top-level `model` (found by
 * pgw_reqbody_inspect in `body`) replaced by `model` (`len` bytes) when that differs. The rest is not copied: the body
 * goes as `*upbody`, then `more[0]` (the new name, quoted, in the request pool) and `more[1]`, the parts of
 * pgw_upstream_request_t; `more` is empty when the name stays.
 */
void pgw_passthrough_splice_model(pgw_request_t *r, const pgw_reqbody_t *body, const char *model, size_t len, h2o_iovec_t *upbody,
                                  h2o_iovec_t more[2]);

/**
 * Writes `{api_base}{path}` for `route` into `buf` (`path` starts with "/v1/"), without doubling a trailing `/v1` of the
 * base, which LiteLLM configs often write for every route.
 */
void pgw_passthrough_url(const pgw_route_t *route, const char *path, char *buf, size_t bufsz);

#endif
