/* poe-gateway: MIT licence. POST /v1/chat/completions: an OpenAI-format request passed through to Poe's chat/completions,
 * but for the key and the model name; the answer comes back byte for byte as it arrives. */
#ifndef PGW_OPENAI_PASSTHROUGH_H
#define PGW_OPENAI_PASSTHROUGH_H

#include "serve/reqbody.h"
#include "serve/request.h"

/**
 * Forwards r's chat/completions request to `route` (a route of either kind, with a key and an api_base) and relays the
 * response: to `{api_base}/chat/completions` for an `openai/` route, to Poe's `/v1/chat/completions` under Poe's name for
 * the model for an `anthropic/` one. `name` is the model name the route serves it as (the body's, or a fallback's);
 * `body` is the inspected request body; only its `model` value changes. Always
 * answers the client, with Poe's response or an error in OpenAI's shape (docs/request-path.md#chat-completions).
 */
void pgw_openai_passthrough_start(pgw_request_t *r, const pgw_route_t *route, h2o_iovec_t name, const pgw_reqbody_t *body);

#endif
