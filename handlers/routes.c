/* poe-gateway: MIT licence. The paths the gateway answers, and their registration with the dispatcher.
 *
 * Each entry names a path, the methods it answers (the Allow header of a 405 for the others), who may call it, and the
 * handler in this folder that answers it. The dispatcher (src/serve/routing.c) owns the matching, the authentication step and
 * the 404 and 405 answers; a new endpoint is one line here and a handler.
 */
#include "serve/routing.h"
#include "handlers/handlers.h"

#define GET_HEAD (PGW_METHOD_GET | PGW_METHOD_HEAD)

/* Order matters only for prefix entries: more specific paths first. */
static const pgw_path_t paths[] = {
    {H2O_STRLIT("/v1/messages/count_tokens"), 0, PGW_METHOD_POST, "POST", PGW_PATH_AUTH_KEY, pgw_handle_count_tokens},
    {H2O_STRLIT("/v1/messages"), 0, PGW_METHOD_POST, "POST", PGW_PATH_AUTH_KEY, pgw_handle_messages},
    {H2O_STRLIT("/v1/chat/completions"), 0, PGW_METHOD_POST, "POST", PGW_PATH_AUTH_KEY, pgw_handle_chat_completions},
    {H2O_STRLIT("/v1/models"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_KEY, pgw_handle_models},
    {H2O_STRLIT("/v1/models/"), 1, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_KEY, pgw_handle_model},
    {H2O_STRLIT("/api/hello"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_NONE, pgw_handle_hello},
    {H2O_STRLIT("/health"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_KEY, pgw_handle_health},
    {H2O_STRLIT("/metrics"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_METRICS, pgw_handle_metrics},
    /* the master key's, checked by the handler: a browser shows a cookie (handlers/usage.c) */
    {H2O_STRLIT("/usage"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_NONE, pgw_handle_usage},
    {H2O_STRLIT("/health/liveliness"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_NONE, pgw_handle_liveliness},
    {H2O_STRLIT("/health/liveness"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_NONE, pgw_handle_liveliness},
    {H2O_STRLIT("/health/readiness"), 0, GET_HEAD, "GET, HEAD", PGW_PATH_AUTH_NONE, pgw_handle_readiness},
};

void pgw_handlers_register(h2o_hostconf_t *hostconf)
{
    pgw_routing_register(hostconf, paths, sizeof(paths) / sizeof(paths[0]));
}
