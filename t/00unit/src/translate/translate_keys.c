/* poe-gateway: MIT licence. Unit tests for src/translate/translate_keys.c: the keys the request reader understands. */
#include "../../../../src/translate/translate_keys.c"
#include "../../test.h"

static void test_round_trip(void)
{
    /* every key of the list is found under its own spelling and spells back the same */
    static const char *const names[] = {
#define X(e, s) s,
        PGW_REQUEST_KEYS(X)
#undef X
    };
    for (size_t i = 0; i != sizeof(names) / sizeof(names[0]); ++i) {
        pgw_request_key_t k = pgw_request_key_find(names[i], strlen(names[i]));
        ok(k == (pgw_request_key_t)(K_OTHER + 1 + i));
        is_str(pgw_request_key_name(k), names[i]);
    }
}

static void test_others(void)
{
    ok(pgw_request_key_find("model", 5) == K_OTHER);
    ok(pgw_request_key_find("", 0) == K_OTHER);
    /* prefixes and longer spellings are other keys: the length is compared, not just the bytes */
    ok(pgw_request_key_find("text", 3) == K_OTHER);
    ok(pgw_request_key_find("texts", 5) == K_OTHER);
    ok(pgw_request_key_find("Text", 4) == K_OTHER);
    ok(pgw_request_key_find("text", 4) == K_TEXT);
    is_str(pgw_request_key_name(K_NONE), "");
    is_str(pgw_request_key_name(K_OTHER), "");
}

void test_src__translate_keys_c(void)
{
    subtest("round trip", test_round_trip);
    subtest("other keys", test_others);
}
