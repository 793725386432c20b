/* poe-gateway: MIT licence. Unit tests for src/common/errors.c: redaction of the upstream key, and statuses for error types. */
#include <string.h>
#include "../../../../src/common/errors.c"
#include "../../test.h"

static const char *redacted(const char *text, const char *secret)
{
    static char buf[512];
    snprintf(buf, sizeof(buf), "%s", text);
    buf[pgw_redact_bytes(buf, strlen(buf), secret)] = '\0';
    return buf;
}

static void test_redact(void)
{
    const char *key = "poe-0123456789abcdef";
    is_str(redacted("key poe-0123456789abcdef refused", key), "key [redacted] refused");
    is_str(redacted("poe-0123456789abcdefpoe-0123456789abcdef", key), "[redacted][redacted]");
    is_str(redacted("nothing here", key), "nothing here");
    is_str(redacted("", key), "");
    /* a message cut inside the key: a tail of 8 or more bytes that starts the key goes too */
    is_str(redacted("cut at poe-01234567", key), "cut at [redacted]");
    is_str(redacted("cut at poe-0123", key), "cut at [redacte"); /* never longer than what it replaces */
    is_str(redacted("cut at poe-012", key), "cut at poe-012"); /* 7 bytes: too short to tell from text */
    /* a secret shorter than the marker is replaced by as much of the marker as fits (never longer than the text) */
    is_str(redacted("the key abcd here", "abcd"), "the key [red here");
    /* no secret, or one too short to mean anything, redacts nothing */
    is_str(redacted("abc abc", "abc"), "abc abc");
    is_str(redacted("abc abc", NULL), "abc abc");
    /* bytes that are not a string: the length says where they end */
    char bytes[] = {'x', 'p', 'o', 'e', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', '\n'};
    size_t n = pgw_redact_bytes(bytes, sizeof(bytes), key);
    is_int(n, 12);
    ok(memcmp(bytes, "x[redacted]\n", 12) == 0);
    /* the C-string form */
    char text[] = "Bearer poe-0123456789abcdef!";
    pgw_redact(text, key);
    is_str(text, "Bearer [redacted]!");
}

static void test_error_status(void)
{
    is_int(pgw_error_status(PGW_ERR_INVALID_REQUEST), 400);
    is_int(pgw_error_status(PGW_ERR_RATE_LIMIT), 429);
    is_int(pgw_error_status(PGW_ERR_OVERLOADED), 529);
    is_int(pgw_error_status(PGW_ERR_TIMEOUT), 504);
    is_int(pgw_error_status(PGW_ERR_API), 502);
    /* Poe refusing the gateway's key is not the client's credential failing */
    is_int(pgw_error_status(PGW_ERR_AUTHENTICATION), 502);
    is_int(pgw_error_status("something_new_error"), 502);
}

static void test_openai_error_json(void)
{
    /* OpenAI's shape, as LiteLLM writes it: the status as a string code, the message escaped */
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_openai_error_json(&buf, 404, PGW_ERR_NOT_FOUND, H2O_STRLIT("model: \"x\" is not configured"));
    pgw_buf_append(&buf, "", 1); /* NUL-terminated, to compare */
    is_str(buf->bytes,
           "{\"error\":{\"message\":\"model: \\\"x\\\" is not configured\",\"type\":\"not_found_error\",\"param\":null,"
           "\"code\":\"404\"}}");
    h2o_buffer_dispose(&buf);
}

void test_src__errors_c(void)
{
    subtest("pgw_redact_bytes", test_redact);
    subtest("pgw_error_status", test_error_status);
    subtest("pgw_openai_error_json", test_openai_error_json);
}
