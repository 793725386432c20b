/* poe-gateway: MIT licence. Unit tests for src/ledger/reconcile.c: the points history summed per day. */
#include "../../../../src/ledger/reconcile.c"
#include "../../test.h"

#define DAY0 20428LL /* 2025-12-06, days since the epoch */

static void test_page(void)
{
    long long points[2] = {0}, entries[2] = {0};
    double usd[2] = {0};
    char cursor[64], json[1024];
    int64_t since = DAY0 * 86400000;

    /* newest first: two today, one yesterday, has_more: an older page is wanted */
    snprintf(json, sizeof(json),
             "{\"has_more\":true,\"length\":3,\"data\":[{\"creation_time\":%lld,\"query_id\":\"a\",\"cost_points\":10,"
             "\"cost_usd\":\"0.0003\"},{\"creation_time\":%lld,\"query_id\":\"b\",\"cost_points\":5,\"cost_usd\":0.0001},"
             "{\"creation_time\":%lld,\"query_id\":\"c\",\"cost_points\":7}]}",
             (DAY0 + 1) * 86400000000LL + 5, (DAY0 + 1) * 86400000000LL, DAY0 * 86400000000LL + 1);
    is_int(pgw_reconcile_history_page(json, strlen(json), since, DAY0, 2, points, usd, entries, cursor, sizeof(cursor)), 1);
    is_str(cursor, "c");
    is_int(points[0], 7);
    is_int(points[1], 15);
    is_int(entries[1], 2);
    ok(usd[1] > 0.000399 && usd[1] < 0.000401);

    /* a page that reaches past `since`: done, and the older entry is not counted */
    snprintf(json, sizeof(json),
             "{\"has_more\":true,\"data\":[{\"creation_time\":%lld,\"query_id\":\"d\",\"cost_points\":1},"
             "{\"creation_time\":%lld,\"query_id\":\"e\",\"cost_points\":1000}]}",
             DAY0 * 86400000000LL, (DAY0 - 1) * 86400000000LL);
    is_int(pgw_reconcile_history_page(json, strlen(json), since, DAY0, 2, points, usd, entries, cursor, sizeof(cursor)), 0);
    is_int(points[0], 8);
    /* the last page */
    is_int(pgw_reconcile_history_page(H2O_STRLIT("{\"has_more\":false,\"data\":[]}"), since, DAY0, 2, points, usd, entries, cursor,
                                      sizeof(cursor)),
           0);
    /* not Poe's shape */
    is_int(
        pgw_reconcile_history_page(H2O_STRLIT("{\"error\":\"x\"}"), since, DAY0, 2, points, usd, entries, cursor, sizeof(cursor)),
        -1);
    is_int(pgw_reconcile_history_page(H2O_STRLIT("<html>"), since, DAY0, 2, points, usd, entries, cursor, sizeof(cursor)), -1);
}

static void test_origin(void)
{
    char *o = origin_of("https://api.poe.com/v1");
    is_str(o, "https://api.poe.com");
    free(o);
    o = origin_of("http://127.0.0.1:8080");
    is_str(o, "http://127.0.0.1:8080");
    free(o);
    ok(origin_of("api.poe.com") == NULL);
}

void test_src__reconcile_c(void)
{
    subtest("a history page", test_page);
    subtest("origin", test_origin);
}
