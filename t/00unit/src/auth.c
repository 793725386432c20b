/* poe-gateway: MIT licence. Unit tests for src/auth.c. */
#include <string.h>
#include "../../../src/auth.c"
#include "../test.h"

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

void test_src__auth_c(void)
{
    ok(cred_is(pgw_auth_credential(iov("k1"), iov(NULL)), "k1"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer k2")), "k2"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("bearer   k3  ")), "k3"));
    ok(cred_is(pgw_auth_credential(iov("k1"), iov("Bearer k2")), "k1"));
    ok(cred_is(pgw_auth_credential(iov(""), iov("Bearer k2")), "k2"));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Basic k2")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer ")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov("Bearer")), NULL));
    ok(cred_is(pgw_auth_credential(iov(NULL), iov(NULL)), NULL));

    ok(pgw_auth_secret_equals("abc", 3, "abc", 3));
    ok(!pgw_auth_secret_equals("abc", 3, "abd", 3));
    ok(!pgw_auth_secret_equals("abc", 3, "abcd", 4));
    ok(!pgw_auth_secret_equals("", 0, "a", 1));

    pgw_config_t conf;
    memset(&conf, 0, sizeof(conf));
    is_str(pgw_auth_identify(&conf, iov("anything")), NULL); /* no key configured: nobody gets in */
    conf.master_key = "sk-master";
    is_str(pgw_auth_identify(&conf, iov("sk-master")), "master");
    is_str(pgw_auth_identify(&conf, iov("sk-maste")), NULL);
    is_str(pgw_auth_identify(&conf, iov("sk-masterr")), NULL);
    is_str(pgw_auth_identify(&conf, iov(NULL)), NULL);
}
