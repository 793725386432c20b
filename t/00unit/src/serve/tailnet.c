/* poe-gateway: MIT licence. Unit tests for src/serve/tailnet.c (the whois answer; the exchange itself is tested end to end). */
#include <string.h>
#include "../../../../src/serve/tailnet.c"
#include "../../test.h"

void test_src__tailnet_c(void)
{
    char login[64];
    const char *ok_answer = "{\"Node\":{\"Name\":\"x\"},\"UserProfile\":{\"ID\":7,\"LoginName\":\"bob@example.com\"}}";
    is_int(pgw_tailnet_parse_whois(ok_answer, strlen(ok_answer), login, sizeof(login)), 0);
    is_str(login, "bob@example.com");
    is_int(pgw_tailnet_parse_whois(H2O_STRLIT("{\"UserProfile\":{\"LoginName\":\"\"}}"), login, sizeof(login)), -1);
    is_int(pgw_tailnet_parse_whois(H2O_STRLIT("{\"Node\":{}}"), login, sizeof(login)), -1);
    is_int(pgw_tailnet_parse_whois(H2O_STRLIT("{\"UserProfile\":{\"LoginName\":42}}"), login, sizeof(login)), -1);
    is_int(pgw_tailnet_parse_whois(H2O_STRLIT("not json"), login, sizeof(login)), -1);
    char tiny[4];
    is_int(pgw_tailnet_parse_whois(ok_answer, strlen(ok_answer), tiny, sizeof(tiny)), -1);
    ok(!pgw_tailnet_available("/nonexistent/socket"));
    ok(!pgw_tailnet_available("/etc/hostname")); /* a file, not a socket */
}
