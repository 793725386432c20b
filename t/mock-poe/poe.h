/* poe-gateway: MIT licence. The mock's default answers, shaped like Poe (poe.c), which mock-poe.c gives every request
 * that no script answers. */
#ifndef MOCK_POE_POE_H
#define MOCK_POE_POE_H

#include "plan.h"

/**
 * Parses the built-in catalog and sets the API key the default routes expect.
 */
void mock_poe_init(const char *api_key);
void mock_poe_dispose(void);
/**
 * Sets the account the usage endpoints describe from {"balance": N, "history": [entries, newest first]} (either may be
 * left out). Returns 0, or -1 when the body is not that shape.
 */
int mock_poe_set_account(yajl_val body);
/**
 * Fills `resp` with Poe's answer to the request (`path` is the path without the query, `seq` the request's number).
 */
void mock_poe_respond(mock_resp_t *resp, h2o_iovec_t path, uint64_t seq);

#endif
