/* poe-gateway: MIT licence. Unit tests for src/upstream/h2client.c: URLs split into host, port, authority and path, and
 * which attempts the HTTP/2 client takes (its connections are tested end to end). */
#include <string.h>
#include "../../../../src/upstream/h2client.c"
#include "../../test.h"

static void split(const char *url, const char *host, const char *port, const char *authority, const char *path)
{
    char *buf = h2o_mem_alloc(PGW_H2CLIENT_SPLIT_SIZE(url));
    const char *h, *p, *a, *q;
    if (host == NULL) {
        ok(pgw_h2client_split_url(url, buf, &h, &p, &a, &q) != 0);
        free(buf);
        return;
    }
    ok(pgw_h2client_split_url(url, buf, &h, &p, &a, &q) == 0);
    is_str(h, host);
    is_str(p, port);
    is_str(a, authority);
    is_str(q, path);
    free(buf);
}

static void test_split(void)
{
    split("https://api.poe.com/v1/messages", "api.poe.com", "443", "api.poe.com", "/v1/messages");
    split("https://localhost:8443", "localhost", "8443", "localhost:8443", "/");
    split("HTTPS://[::1]:9/v1/models?x=1#frag", "::1", "9", "[::1]:9", "/v1/models?x=1");
    split("https://h?q", "h", "443", "h", "/?q");
    split("http://api.poe.com/", NULL, NULL, NULL, NULL);
    split("https:///path", NULL, NULL, NULL, NULL);
    split("https://user@host/", NULL, NULL, NULL, NULL);
    split("https://host:8x/", NULL, NULL, NULL, NULL);
    split("https://[::1/", NULL, NULL, NULL, NULL);
}

static uv_loop_t loop;
static pgw_h2client_t *c; /* kept, as a worker's is, until the process exits */

static void test_accepts(void)
{
    uv_loop_init(&loop);
    c = pgw_h2client_create(&loop, NULL);
    c->proxied = 0; /* whatever this test's environment says */
    pgw_attempt_t a = {.url = "https://api.poe.com/v1/messages", .method = "POST", .ssl_verify = 1};
    ok(pgw_h2client_accepts(c, &a));
    a.unix_socket = "/tmp/s";
    ok(!pgw_h2client_accepts(c, &a));
    a.unix_socket = NULL;
    a.url = "http://api.poe.com/v1/messages";
    ok(!pgw_h2client_accepts(c, &a));
    a.url = "https://api.poe.com/v1/messages";
    find_host(c, "api.poe.com", "443", 1, 1)->no_h2 = 1; /* the server did not select h2 */
    ok(!pgw_h2client_accepts(c, &a));
    a.ssl_verify = 0; /* another pool */
    ok(pgw_h2client_accepts(c, &a));
    c->proxied = 1;
    ok(!pgw_h2client_accepts(c, &a));
}

void test_src__h2client_c(void)
{
    subtest("URLs", test_split);
    subtest("accepts", test_accepts);
}
