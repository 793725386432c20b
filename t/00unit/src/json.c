/* poe-gateway: MIT licence. Unit tests for src/json.c. */
#include <h2o/socket.h>
#include "../../../src/json.c"
#include "../test.h"

static const char *quote(h2o_buffer_t **buf, const char *s, size_t len)
{
    (*buf)->size = 0;
    pgw_json_append_string(buf, s, len);
    pgw_buf_append(buf, "", 1);
    return (*buf)->bytes;
}

void test_src__json_c(void)
{
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);

    is_str(quote(&buf, H2O_STRLIT("plain")), "\"plain\"");
    is_str(quote(&buf, H2O_STRLIT("a\"b\\c\nd\re\tf")), "\"a\\\"b\\\\c\\nd\\re\\tf\"");
    is_str(quote(&buf, "\x01\x1f", 2), "\"\\u0001\\u001f\"");
    is_str(quote(&buf, H2O_STRLIT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
    /* invalid UTF-8 becomes U+FFFD, byte by byte: a lone continuation, a truncated sequence, an overlong form, a surrogate */
    is_str(quote(&buf, "\x80", 1), "\"\xef\xbf\xbd\"");
    is_str(quote(&buf, "a\xc3", 2), "\"a\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xc0\xaf", 2), "\"\xef\xbf\xbd\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xed\xa0\x80", 3), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    is_str(quote(&buf, "\xf4\x90\x80\x80", 4), "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
    /* NUL inside the input is escaped, not a terminator */
    is_str(quote(&buf, "a\0b", 3), "\"a\\u0000b\"");

    buf->size = 0;
    pgw_json_append_int(&buf, -9223372036854775807LL - 1);
    pgw_buf_append(&buf, "", 1);
    is_str(buf->bytes, "-9223372036854775808");

    h2o_buffer_dispose(&buf);
}
