/* poe-gateway: MIT licence. Unit tests for src/upstream/upstream.c: the retry policy (the transfers are tested end to end). */
#include <string.h>
#include "../../../../src/upstream/upstream.c"
#include "../../test.h"

void test_src__upstream_c(void)
{
    time_t now = 1764150000; /* 2025-11-26T09:40:00Z */
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("1")), now), 1000);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("0.5")), now), 500);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("120")), now), 120000);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("Wed, 26 Nov 2025 09:40:07 GMT")), now), 7000);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("Wed, 26 Nov 2025 09:39:00 GMT")), now), 0);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("-1")), now), -1);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(H2O_STRLIT("soon")), now), -1);
    is_int(pgw_upstream_parse_retry_after(h2o_iovec_init(NULL, 0), now), -1);

    for (int i = 0; i != 200; ++i) {
        long b1 = pgw_upstream_backoff_ms(1), b2 = pgw_upstream_backoff_ms(2), b9 = pgw_upstream_backoff_ms(9);
        if (!(b1 >= 187 && b1 <= 313 && b2 >= 375 && b2 <= 625 && b9 >= 22500 && b9 <= 37500)) {
            ok(0);
            note("backoff out of range: %ld %ld %ld", b1, b2, b9);
            return;
        }
    }
    ok(1);

    ok(status_is_retryable(429) && status_is_retryable(503) && status_is_retryable(529) && status_is_retryable(500));
    ok(!status_is_retryable(400) && !status_is_retryable(401) && !status_is_retryable(404) && !status_is_retryable(504));
}
