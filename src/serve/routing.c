/* poe-gateway: MIT licence. The dispatcher: one libh2o handler for every path.
 *
 * It begins the request's state, refuses a request whose framing is ambiguous, then walks the table of paths the handlers
 * registered (handlers/routes.c): the first entry whose path matches and whose methods include the request's runs, after
 * the caller is identified when the entry asks for it (a key, or a tailnet whois that may answer later). A path that
 * matches only with other methods gets 405 with Allow, anything else 404. The dispatcher knows no handler by name.
 */
#include <string.h>
#include "serve/auth.h"
#include "serve/bodies.h"
#include "common/errors.h"
#include "serve/framing.h"
#include "common/log.h"
#include "serve/routing.h"
#include "serve/tailnet.h"

#define MODULE_NAME "routing"

/* The dispatcher: libh2o's handler with the path table it dispatches over. */
struct dispatcher {
    h2o_handler_t super;
    const pgw_path_t *paths;
    size_t num_paths;
};

static int method_bit(h2o_iovec_t method)
{
    if (h2o_memis(method.base, method.len, H2O_STRLIT("GET")))
        return PGW_METHOD_GET;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("HEAD")))
        return PGW_METHOD_HEAD;
    if (h2o_memis(method.base, method.len, H2O_STRLIT("POST")))
        return PGW_METHOD_POST;
    return 0;
}

static int path_matches(const pgw_path_t *e, h2o_iovec_t path)
{
    if (e->prefix)
        return path.len > e->path_len && memcmp(path.base, e->path, e->path_len) == 0;
    /* "/v1/messages/" is the same route as "/v1/messages" */
    if (path.len == e->path_len + 1 && path.base[e->path_len] == '/')
        path.len--;
    return h2o_memis(path.base, path.len, e->path, e->path_len);
}

/* A key the gateway does not know stays unknown however often it is sent: no retry (docs/errors.md#retries-that-cannot-help) */
static void send_unauthorized(pgw_request_t *r, int had_credential)
{
    pgw_error_no_retry(r->req);
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
 * was withheld for want of a key (src/serve/bodies.c) gets the 401 whatever the configuration says by now. */
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
    struct dispatcher *d = (struct dispatcher *)self;
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

    for (size_t i = 0; i != d->num_paths; ++i) {
        const pgw_path_t *e = d->paths + i;
        if (!path_matches(e, req->path_normalized))
            continue;
        if ((e->methods & method) == 0) {
            if (!path_known) {
                path_known = 1;
                h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, e->allow, strlen(e->allow));
            }
            continue;
        }
        if (e->auth == PGW_PATH_AUTH_NONE || (e->auth == PGW_PATH_AUTH_METRICS && r->conf->metrics_auth == PGW_METRICS_AUTH_NONE))
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

void pgw_routing_register(h2o_hostconf_t *hostconf, const pgw_path_t *paths, size_t num_paths)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    struct dispatcher *d = (struct dispatcher *)h2o_create_handler(pathconf, sizeof(*d));
    d->super.on_req = on_req;
    d->paths = paths;
    d->num_paths = num_paths;
    pgw_errors_register(hostconf);
    if (!pgw_bodies_init())
        pgw_log_warn(MODULE_NAME, "libh2o's request parsing does not reach src/serve/bodies.c: request bodies are read before the "
                                  "key is checked and are not counted against gateway.max_body_bytes_in_flight");
}
