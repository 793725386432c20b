/* poe-gateway: MIT licence. Unit tests for src/upstream/upstream_curl.c: the upload buffer and failure classes (the
 * transfers are tested end to end). */
#include <string.h>
#include "../../../../src/upstream/upstream_curl.c"
#include "../../test.h"

/* curl's upload buffer holds the whole body (up to its cap), so that HTTP/2 has sent it all before a server that answers
 * without reading it resets the stream: with curl's default 16 KB, one 50 KB request in five was sent again (t/83rotation) */
static void test_upload_buffer(void)
{
    is_int(upload_buffer_size(50000), 50000);
    is_int(upload_buffer_size(200000), 200000);
    is_int(upload_buffer_size(64 * 1024 * 1024), UPLOAD_BUFFER_MAX);
}

static void test_never_processed(void)
{
    struct easy x;
    memset(&x, 0, sizeof(x));
    strcpy(x.errbuf, "Connection died, tried 5 times before giving up");
    ok(never_processed(&x));
    strcpy(x.errbuf, "Recv failure: Connection reset by peer");
    ok(!never_processed(&x));
}

void test_src__upstream_curl_c(void)
{
    subtest("upload buffer", test_upload_buffer);
    subtest("never processed", test_never_processed);
    ok(result_is_retryable(CURLE_COULDNT_CONNECT) && !result_is_retryable(CURLE_OPERATION_TIMEDOUT));
}
