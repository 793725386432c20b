/* poe-gateway: MIT licence. Unit tests for src/serve/auth.c. */
#include <string.h>
#include <h2o/string_.h>
#include "../../../../src/serve/auth.c"
#include "config/route_match.h"
#include "../../test.h"

static h2o_iovec_t iov(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

static int cred_is(h2o_iovec_t got, const char *expected)
{
    if (expected == NULL)
        return got.base == NULL;
    return got.base != NULL && h2o_memis(got.base, got.len, expected, strlen(expected));
}

static void test_cookie(void)
{
    pgw_config_t conf = {0}, other = {0};
    char buf[PGW_AUTH_COOKIE_MAX];
    conf.master_key = "sk-master-0123456789";
    other.master_key = "sk-master-9876543210";

    size_t len = pgw_auth_cookie_make(&conf, 2000, buf);
    ok(len > 0 && strncmp(buf, "2000.", 5) == 0 && len == 5 + 64);
    ok(strstr(buf, conf.master_key) == NULL);
    ok(pgw_auth_cookie_check(&conf, h2o_iovec_init(buf, len), 1999));
    ok(!pgw_auth_cookie_check(&conf, h2o_iovec_init(buf, len), 2000));  /* expired */
    ok(!pgw_auth_cookie_check(&other, h2o_iovec_init(buf, len), 1999)); /* another master key */
    buf[len - 1] = buf[len - 1] == '0' ? '1' : '0';
    ok(!pgw_auth_cookie_check(&conf, h2o_iovec_init(buf, len), 1999)); /* forged */
    buf[0] = '3';                                                      /* a later expiry under the same MAC */
    ok(!pgw_auth_cookie_check(&conf, h2o_iovec_init(buf, len), 1999));
    ok(!pgw_auth_cookie_check(&conf, h2o_iovec_init(NULL, 0), 1));
    ok(!pgw_auth_cookie_check(&conf, iov("2000"), 1));
    ok(!pgw_auth_cookie_check(&conf, iov(".abc"), 1));
    conf.master_key = NULL;
    ok(pgw_auth_cookie_make(&conf, 2000, buf) == 0);
}

void test_src__auth_c(void)
{
    subtest("session cookie", test_cookie);
    ok(cred_is(pgw_auth_credential(iov("k1"), iov(NULL)), "k1"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer k2")), "k2"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("bearer   k3  ")), "k3"));
    ok(cred_is(pgw_auth_credential(iov("k1"), iov("Bearer k2")), "k1"));
    ok(cred_is(pgw_auth_credential(iov(""), iov("Bearer k2")), "k2"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Basic k2")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer ")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov(NULL)), NULL));

    pgw_config_t conf;
    const pgw_key_t *key = (const pgw_key_t *)1;
    memset(&conf, 0, sizeof(conf));
    is_str(pgw_auth_identify(&conf, iov("anything"), &key), NULL); /* no key configured: nobody gets in */
    ok(key == NULL);
    conf.master_key = "sk-master";
    is_str(pgw_auth_identify(&conf, iov("sk-master"), &key), "master");
    ok(key == NULL);
    is_str(pgw_auth_identify(&conf, iov("sk-maste"), &key), NULL);
    is_str(pgw_auth_identify(&conf, iov("sk-masterr"), &key), NULL);
    is_str(pgw_auth_identify(&conf, iov(NULL), &key), NULL);

    /* named keys are matched by digest; one whose variable is unset (has_key 0) matches nothing, whatever its digest
     * field holds: here the digest of a credential that is then presented */
    pgw_key_t keys[3];
    memset(keys, 0, sizeof(keys));
    keys[0].name = "alice";
    SHA256((const unsigned char *)"alice-key", 9, keys[0].sha256);
    keys[0].has_key = 1;
    keys[1].name = "unset";
    SHA256((const unsigned char *)"carol-key", 9, keys[1].sha256);
    keys[2].name = "bob";
    SHA256((const unsigned char *)"bob-key", 7, keys[2].sha256);
    keys[2].has_key = 1;
    conf.keys = keys;
    conf.num_keys = 3;
    is_str(pgw_auth_identify(&conf, iov("alice-key"), &key), "alice");
    ok(key == keys);
    is_str(pgw_auth_identify(&conf, iov("bob-key"), &key), "bob");
    ok(key == keys + 2);
    is_str(pgw_auth_identify(&conf, iov("sk-master"), &key), "master");
    ok(key == NULL);
    is_str(pgw_auth_identify(&conf, iov("alice-kez"), &key), NULL);
    ok(key == NULL);
    key = (const pgw_key_t *)1;
    is_str(pgw_auth_identify(&conf, iov("carol-key"), &key), NULL);
    ok(key == NULL);
    is_str(pgw_auth_identify(&conf, iov(""), &key), NULL);

    /* allow lists */
    char *patterns[] = {"claude-*", "gpt-5"};
    keys[0].models = patterns;
    keys[0].num_models = 2;
    ok(pgw_key_allows_model(keys, H2O_STRLIT("claude-opus-4-5")));
    ok(pgw_key_allows_model(keys, H2O_STRLIT("gpt-5")));
    ok(!pgw_key_allows_model(keys, H2O_STRLIT("gpt-5-mini")));
    ok(pgw_key_allows_model(keys + 2, H2O_STRLIT("anything")));
}
