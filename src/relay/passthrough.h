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

#endif
