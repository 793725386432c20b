/* poe-gateway: MIT licence. The handlers of the gateway's paths, and their registration; each handler returns 0 after it
 * has sent (or started) a response. */
#ifndef PGW_HANDLERS_H
#define PGW_HANDLERS_H

#include <h2o.h>
#include "serve/request.h"

/**
 * Registers the gateway's paths and their handlers (handlers/routes.c) with the dispatcher on `hostconf`. Called once,
 * by the program, between pgw_server_init and pgw_server_run.
 */
void pgw_handlers_register(h2o_hostconf_t *hostconf);

/* handlers/health.c */
int pgw_handle_hello(pgw_request_t *r);
int pgw_handle_liveliness(pgw_request_t *r);
int pgw_handle_readiness(pgw_request_t *r);
int pgw_handle_health(pgw_request_t *r);

/* handlers/models.c */
int pgw_handle_models(pgw_request_t *r);
int pgw_handle_model(pgw_request_t *r);

/* handlers/metrics.c */
int pgw_handle_metrics(pgw_request_t *r);

/* handlers/usage.c */
int pgw_handle_usage(pgw_request_t *r);

/* handlers/messages.c: the routed endpoints */
int pgw_handle_messages(pgw_request_t *r);
int pgw_handle_count_tokens(pgw_request_t *r);
int pgw_handle_chat_completions(pgw_request_t *r); /* OpenAI's format, passed through; errors in OpenAI's shape */

/* The handlers of authenticated paths run after src/serve/routing.c has identified the caller (r->key_name, r->key). */

#endif
