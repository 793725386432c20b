/* poe-gateway: MIT licence. `openai/` routes: an Anthropic request translated to Poe's chat/completions, and the answer
 * translated back, whole or as it streams. */
#ifndef PGW_TRANSLATE_ROUTE_H
#define PGW_TRANSLATE_ROUTE_H

#include "serve/reqbody.h"
#include "serve/request.h"

/**
 * POST /v1/messages on an openai/ route (a route with a key and an api_base), asked for the model `name` (the client's,
 * or a fallback's: the bot is the route's upstream name for it). Always answers the client, unless the request's
 * fallback takes it on (pgw_relay_hand_off).
 */
void pgw_translate_route_messages(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body);

/** POST /v1/messages/count_tokens on an openai/ route: the local estimate of the translated request
 * (docs/mapping.md#the-token-estimate). */
void pgw_translate_route_count_tokens(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body);

#endif
