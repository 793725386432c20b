/* poe-gateway: MIT licence. Maps method and path to a route handler; 404 and 405 for everything else. */
#include <string.h>
#include "auth.h"
#include "bodies.h"
#include "errors.h"
#include "framing.h"
#include "log.h"
#include "routing.h"
#include "tailnet.h"
#include "handlers/handlers.h"

#define MODULE_NAME "routing"

enum {
    M_GET = 1,
    M_HEAD = 2,
    M_POST = 4,
};

enum {
    AUTH_NONE,    /* probes */
    AUTH_KEY,     /* a key, or (gateway.auth: tailscale) a tailnet identity */
    AUTH_METRICS, /* as gateway.metrics_auth says */
};

struct route_entry {
    const char *path;
    size_t path_len;
    int prefix; /* match paths below `path` too (e.g. /v1/models/{id}) */
    int methods;
    const char *allow; /* value of the Allow header on 405 */
    int auth;
    int (*handler)(pgw_request_t *r);
};

/* Order matters only for prefix entries: more specific paths first. */
static const struct route_entry routes[] = {
    {H2O_STRLIT("/v1/messages/count_tokens"), 0, M_POST, "POST", AUTH_KEY, pgw_handle_count_tokens},
    {H2O_STRLIT("/v1/messages"), 0, M_POST, "POST", AUTH_KEY, pgw_handle_messages},
    {H2O_STRLIT("/v1/models"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_KEY, pgw_handle_models},
    {H2O_STRLIT("/v1/models/"), 1, M_GET | M_HEAD, "GET, HEAD", AUTH_KEY, pgw_handle_model},
    {H2O_STRLIT("/api/hello"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_NONE, pgw_handle_hello},
    {H2O_STRLIT("/health"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_KEY, pgw_handle_health},
    {H2O_STRLIT("/metrics"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_METRICS, pgw_handle_metrics},
    {H2O_STRLIT("/usage"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_KEY, pgw_handle_usage},
    {H2O_STRLIT("/health/liveliness"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_NONE, pgw_handle_liveliness},
    {H2O_STRLIT("/health/liveness"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_NONE, pgw_handle_liveliness},
    {H2O_STRLIT("/health/readiness"), 0, M_GET | M_HEAD, "GET, HEAD", AUTH_NONE, pgw_handle_readiness},
};

static int method_bit(h2o_iovec_t method)
{
    if (h2o_memis(method.base, method.len, H2O_STRLIT("GET")))
        return M_GET;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("HEAD")))
        return M_HEAD;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("POST")))
        return M_POST;
    return 0;
}

static int path_matches(const struct route_entry *e, h2o_iovec_t path)
{
    if (e->prefix)
        return path.len > e->path_len && memcmp(path.base, e->path, e->path_len) == 0;
    /* "/v1/messages/" is the same route as "/v1/messages" */
    if (path.len == e->path_len + 1 && path.base[e->path_len] == '/')
        path.len--;
    return h2o_memis(path.base, path.len, e->path, e->path_len);
}

static void send_unauthorized(pgw_request_t *r, int had_credential)
{
    pgw_send_error(r->req, 401, PGW_ERR_AUTHENTICATION,
                   had_credential ? "invalid API key" : "missing API key: send it as x-api-key or Authorization: Bearer");
}

/* The tailnet told who the peer is: a login is the caller's name, and a gateway.keys entry of that name its rules. */
static void on_whois(pgw_request_t *r, const char *login)
{
    if (login == NULL) {
        send_unauthorized(r, 0);
        return;
    }
    r->key_name = h2o_strdup(&r->req->pool, login, SIZE_MAX).base;
    for (size_t i = 0; i != r->conf->num_keys; ++i)
        if (strcmp(r->conf->keys[i].name, login) == 0)
            r->key = r->conf->keys + i;
    r->pending_handler(r);
}

/* Identifies the caller, then runs the handler (maybe later, after a tailnet whois); or answers 401. A request whose body
 * was withheld for want of a key (src/bodies.c) gets the 401 whatever the configuration says by now. */
static int authenticate(pgw_request_t *r, int (*handler)(pgw_request_t *r), pgw_body_verdict_t body)
{
    h2o_iovec_t credential =
        pgw_auth_credential(pgw_req_header(r->req, H2O_STRLIT("x-api-key")), pgw_req_header(r->req, H2O_STRLIT("authorization")));
    if (body == PGW_BODY_UNAUTHENTICATED) {
        send_unauthorized(r, credential.base != NULL);
        return 0;
    }
    if ((r->key_name = pgw_auth_identify(r->conf, credential, &r->key)) != NULL)
        return handler(r);
    const char *socket = r->conf->tailscale_socket != NULL ? r->conf->tailscale_socket : PGW_DEFAULT_TAILSCALE_SOCKET;
    if (r->conf->auth_tailscale && credential.base == NULL && pgw_tailnet_available(socket)) {
        r->pending_handler = handler;
        pgw_tailnet_whois(r, socket, on_whois);
        return 0;
    }
    send_unauthorized(r, credential.base != NULL);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    pgw_request_t *r = pgw_request_begin(req);
    int method = method_bit(req->method);
    int path_known = 0;
    pgw_body_verdict_t body = pgw_bodies_verdict(req);

    if (body == PGW_BODY_OVER_CONNECTION || body == PGW_BODY_OVER_GATEWAY) {
        /* the caller was known when the body was refused: named in the access log and metrics */
        r->key_name = pgw_auth_identify(
            r->conf,
            pgw_auth_credential(pgw_req_header(req, H2O_STRLIT("x-api-key")), pgw_req_header(req, H2O_STRLIT("authorization"))),
            &r->key);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        pgw_send_error(req, 503, PGW_ERR_OVERLOADED, "the gateway holds too many request bodies at once %s; retry shortly",
                       body == PGW_BODY_OVER_CONNECTION ? "on this connection (gateway.max_body_bytes_per_connection)"
                                                        : "(gateway.max_body_bytes_in_flight)");
        return 0;
    }

    if (pgw_framing_refuse(req))
        return 0;

    for (size_t i = 0; i != sizeof(routes) / sizeof(routes[0]); ++i) {
        const struct route_entry *e = routes + i;
        if (!path_matches(e, req->path_normalized))
            continue;
        if ((e->methods & method) == 0) {
            if (!path_known) {
                path_known = 1;
                h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, e->allow, strlen(e->allow));
            }
            continue;
        }
        if (e->auth == AUTH_NONE || (e->auth == AUTH_METRICS && r->conf->metrics_auth == PGW_METRICS_AUTH_NONE))
            return e->handler(r);
        return authenticate(r, e->handler, body);
    }
    if (path_known) {
        pgw_send_error(req, 405, PGW_ERR_INVALID_REQUEST, "method %.*s is not allowed on %.*s", (int)req->method.len,
                       req->method.base, (int)req->path_normalized.len, req->path_normalized.base);
    } else {
        pgw_send_error(req, 404, PGW_ERR_NOT_FOUND, "no route for %.*s %.*s", (int)req->method.len, req->method.base,
                       (int)req->path_normalized.len, req->path_normalized.base);
    }
    return 0;
}

void pgw_routing_register(h2o_hostconf_t *hostconf)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
    pgw_errors_register(hostconf);
    if (!pgw_bodies_init())
        pgw_log_warn(MODULE_NAME, "libh2o's request parsing does not reach src/bodies.c: request bodies are read before the "
                                  "key is checked and are not counted against gateway.max_body_bytes_in_flight");
}
