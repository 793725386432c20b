/* poe-gateway: MIT licence. Which route serves a routed request, and the hand-over to a fallback route when the one
 * serving fails before the client has seen a byte (docs/request-path.md#fallbacks). */
#ifndef PGW_HANDLERS_FALLBACK_H
#define PGW_HANDLERS_FALLBACK_H

#include "serve/request.h"

/**
 * Makes `route`, asked for as `name`, the route serving r (r->route, r->route_model, r->bucket, the response header
 * x-poe-gateway-route), then calls `go(r)`, the handler's next step for r->route. r->body must be set. Without
 * fallbacks in the configuration that is all, at once. With them, r->fallback is set first: a route that fails with
 * 408, 429 or 5xx before the client saw a byte counts towards its cooldown and hands r to the next target of its
 * model's list that can take it, which `go` starts again from the next loop turn. A route cooling down starts on its
 * first usable fallback, and a prompt estimated past the route's model_info.max_input_tokens on its first
 * context-window fallback that fits (the estimate runs on the thread pool first). `go` is called once per route tried.
 */
void pgw_fallback_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, void (*go)(pgw_request_t *r));

#endif
