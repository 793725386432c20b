/* poe-gateway: MIT licence. `openai/` routes: an Anthropic request translated to Poe's chat/completions, and the answer
 * translated back, whole or as it streams. */
#ifndef PGW_TRANSLATE_ROUTE_H
#define PGW_TRANSLATE_ROUTE_H

#include "serve/reqbody.h"
#include "serve/request.h"

/** POST /v1/messages on an openai/ route (a route with a key and an api_base). Always answers the client. */
void pgw_translate_route_messages(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body);

/** POST /v1/messages/count_tokens on an openai/ route: the local estimate of the translated request
 * (docs/mapping.md#the-token-estimate). */
void pgw_translate_route_count_tokens(pgw_request_t *r, const pgw_route_t *route, const pgw_reqbody_t *body);

#endif
