/* poe-gateway: MIT licence. Unit tests for src/config/masterkey.c. */
#include <stdlib.h>
#include <string.h>
#include "../../../../src/config/masterkey.c"
#include "../../test.h"

void test_src__masterkey_c(void)
{
    ok(pgw_host_is_loopback("127.0.0.1"));
    ok(pgw_host_is_loopback("127.1.2.3"));
    ok(pgw_host_is_loopback("::1"));
    ok(pgw_host_is_loopback("localhost"));
    ok(!pgw_host_is_loopback("0.0.0.0"));
    ok(!pgw_host_is_loopback("::"));
    ok(!pgw_host_is_loopback("192.168.1.2"));
    ok(!pgw_host_is_loopback("100.64.0.1"));
    ok(!pgw_host_is_loopback("localhost.example"));

    pgw_config_t conf;
    char buf[256];
    memset(&conf, 0, sizeof(conf));
    conf.state_dir = "/var/lib/pgw";
    is_int(pgw_state_dir(&conf, buf, sizeof(buf)), 0);
    is_str(buf, "/var/lib/pgw");
    conf.state_dir = NULL;
    char *old_home = getenv("HOME") != NULL ? strdup(getenv("HOME")) : NULL, *old_xdg = getenv("XDG_STATE_HOME") != NULL ? strdup(getenv("XDG_STATE_HOME")) : NULL;
    unsetenv("XDG_STATE_HOME");
    setenv("HOME", "/home/dev", 1);
    is_int(pgw_state_dir(&conf, buf, sizeof(buf)), 0);
    is_str(buf, "/home/dev/.local/state/poe-gateway");
    setenv("XDG_STATE_HOME", "/xdg", 1);
    is_int(pgw_state_dir(&conf, buf, sizeof(buf)), 0);
    is_str(buf, "/xdg/poe-gateway");
    if (old_home != NULL)
        setenv("HOME", old_home, 1);
    if (old_xdg != NULL)
        setenv("XDG_STATE_HOME", old_xdg, 1);
    else
        unsetenv("XDG_STATE_HOME");
    free(old_home);
    free(old_xdg);

    /* a configured key is kept; no key and a non-loopback host is refused */
    char err[512];
    conf.master_key = "sk-configured";
    conf.host = "0.0.0.0";
    is_int(pgw_masterkey_ensure(&conf, err, sizeof(err)), 0);
    is_str(conf.master_key, "sk-configured");
    conf.master_key = NULL;
    is_int(pgw_masterkey_ensure(&conf, err, sizeof(err)), -1);
    ok(strstr(err, "0.0.0.0") != NULL);
}
