/* poe-gateway: MIT licence. Who is calling, by tailnet identity: tailscaled's LocalAPI whois for the peer address.
 *
 * The whois goes through the worker's upstream client over the unix socket (libcurl's CURLOPT_UNIX_SOCKET_PATH), so the
 * loop never blocks on tailscaled. Answers, positive or not, are cached per peer IP in a small per-thread table.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "serve/tailnet.h"
#include "upstream/upstream.h"
#include "serve/worker.h"

#define MODULE_NAME "tailnet"
#define CACHE_SIZE 64
#define MAX_ANSWER (256 * 1024)

struct cache_entry {
    char ip[INET6_ADDRSTRLEN];
    char login[256]; /* "" = not a tailnet peer */
    uint64_t expires;
};

static __thread struct cache_entry cache[CACHE_SIZE];
static __thread size_t cache_next;

struct whois {
    pgw_request_t *r;
    pgw_tailnet_cb cb;
    pgw_upstream_transfer_t *transfer; /* NULL once done */
    h2o_buffer_t *body;
    int status;
    char ip[INET6_ADDRSTRLEN];
};

int pgw_tailnet_available(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int pgw_tailnet_parse_whois(const char *json, size_t len, char *out, size_t outsz)
{
    char text[MAX_ANSWER + 1], err[128];
    if (len > MAX_ANSWER)
        return -1;
    memcpy(text, json, len);
    text[len] = '\0';
    yajl_val root = yajl_tree_parse(text, err, sizeof(err));
    if (root == NULL)
        return -1;
    const char *path[] = {"UserProfile", "LoginName", NULL};
    yajl_val login = yajl_tree_get(root, path, yajl_t_string);
    int ret = -1;
    if (login != NULL && login->u.string[0] != '\0' && strlen(login->u.string) < outsz) {
        strcpy(out, login->u.string);
        ret = 0;
    }
    yajl_tree_free(root);
    return ret;
}

static struct cache_entry *cache_find(const char *ip, uint64_t now)
{
    for (size_t i = 0; i != CACHE_SIZE; ++i)
        if (cache[i].expires > now && strcmp(cache[i].ip, ip) == 0)
            return cache + i;
    return NULL;
}

static void cache_put(const char *ip, const char *login, uint64_t now)
{
    struct cache_entry *e = cache + cache_next++ % CACHE_SIZE;
    snprintf(e->ip, sizeof(e->ip), "%s", ip);
    snprintf(e->login, sizeof(e->login), "%s", login != NULL ? login : "");
    e->expires = now + PGW_TAILNET_CACHE_MS;
}

static void on_dispose(void *p)
{
    struct whois *w = p;
    if (w->transfer != NULL)
        pgw_upstream_cancel(w->transfer);
    h2o_buffer_dispose(&w->body);
}

static void on_head(pgw_upstream_transfer_t *t, int status)
{
    struct whois *w = pgw_upstream_data(t);
    w->status = status;
}

static int on_body(pgw_upstream_transfer_t *t, const char *bytes, size_t len)
{
    struct whois *w = pgw_upstream_data(t);
    if (w->body->size + len <= MAX_ANSWER)
        pgw_buf_append(&w->body, bytes, len);
    return 0;
}

static void on_complete(pgw_upstream_transfer_t *t, pgw_upstream_error_t err, const char *errstr)
{
    struct whois *w = pgw_upstream_data(t);
    char login[256];
    int found = err == PGW_UPSTREAM_OK && w->status == 200 &&
                pgw_tailnet_parse_whois(w->body->bytes, w->body->size, login, sizeof(login)) == 0;
    w->transfer = NULL;
    if (err != PGW_UPSTREAM_OK)
        pgw_log_warn(MODULE_NAME, "whois %s: %s", w->ip, errstr);
    else
        cache_put(w->ip, found ? login : NULL, pgw_now_ms());
    w->cb(w->r, found ? login : NULL);
}

static const pgw_upstream_callbacks_t callbacks = {on_head, on_body, on_complete};

void pgw_tailnet_whois(pgw_request_t *r, const char *socket_path, pgw_tailnet_cb cb)
{
    h2o_req_t *req = r->req;
    struct sockaddr_storage ss;
    char ip[INET6_ADDRSTRLEN] = "", addr[INET6_ADDRSTRLEN + 16], url[256];
    unsigned port = 0;

    socklen_t sslen = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sslen != 0 && ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(addr, sizeof(addr), "%s:%u", ip, port);
    } else if (sslen != 0 && ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof(ip));
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(addr, sizeof(addr), "[%s]:%u", ip, port);
    } else {
        cb(r, NULL);
        return;
    }
    struct cache_entry *hit = cache_find(ip, pgw_now_ms());
    if (hit != NULL) {
        cb(r, hit->login[0] != '\0' ? hit->login : NULL);
        return;
    }

    struct whois *w = h2o_mem_alloc_shared(&req->pool, sizeof(*w), on_dispose);
    memset(w, 0, sizeof(*w));
    w->r = r;
    w->cb = cb;
    snprintf(w->ip, sizeof(w->ip), "%s", ip);
    h2o_buffer_init(&w->body, &h2o_socket_buffer_prototype);
    /* tailscaled checks the Host header of LocalAPI requests: it must be local-tailscaled.sock */
    snprintf(url, sizeof(url), "http://local-tailscaled.sock/localapi/v0/whois?addr=%s", addr);
    pgw_upstream_request_t up = {url, "GET", h2o_iovec_init(NULL, 0), NULL, 5, 5, 0, 1, 0, socket_path};
    w->transfer = pgw_upstream_start(r->worker->upstream, &up, &callbacks, w);
}
