/* poe-gateway: MIT licence. Unit tests for src/serve/reqbody.c. */
#include <stdlib.h>
#include <string.h>
#include "../../../../src/serve/reqbody.c"
#include "../../test.h"

static int inspect(const char *body, pgw_reqbody_t *info, char *err)
{
    err[0] = '\0';
    return pgw_reqbody_inspect(body, strlen(body), info, err, 256);
}

/* The vector paths of skip_plain stop on the right byte wherever it falls in a 16- or 32-byte block, and on the tail. */
static void test_blocks(void)
{
    static const struct {
        const char *special; /* put at offset i of a long string value */
        int valid;
        const char *error; /* what the message names when not valid */
    } cases[] = {
        {"\\n", 1, NULL},
        {"\\u00e9", 1, NULL},
        {"\xc3\xa9", 1, NULL},             /* é in UTF-8 */
        {"\xe2\x82\xac", 1, NULL},         /* € */
        {"\x7f", 1, NULL},                  /* DEL is a plain byte in JSON */
        {"\x1f", 0, "control characters must be escaped"},
        {"\t", 0, "control characters must be escaped"},
        {"\xff", 0, "invalid bytes in UTF8 string"},
        {"\xc3(", 0, "invalid bytes in UTF8 string"},
        {"\\x", 0, "an invalid character was escaped"},
        {"\"", 0, "after key and value"}, /* the string ends early: what follows is not a comma */
    };
    pgw_reqbody_t info;
    char body[256], err[256];
    size_t failures = 0;
    for (size_t c = 0; c != sizeof(cases) / sizeof(cases[0]); ++c) {
        for (int len = 0; len <= 100; ++len) {
            for (int at = 0; at <= len; ++at) {
                int o = sprintf(body, "{\"model\":\"m\",\"x\":\"%.*s%s%.*s\"}", at, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                cases[c].special, len - at, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
                err[0] = '\0';
                int ret = pgw_reqbody_inspect(body, (size_t)o, &info, err, sizeof(err));
                int good = cases[c].valid ? ret == 0 && strcmp(info.model, "m") == 0
                                          : ret == -1 && strstr(err, cases[c].error) != NULL;
                if (!good && failures++ < 5)
                    note("%s at %d of %d: returned %d, %s", cases[c].special, at, len, ret, err);
            }
        }
    }
    is_int(failures, 0);
}

void test_src__reqbody_c(void)
{
    pgw_reqbody_t info;
    char err[256];

    subtest("special bytes at every offset of 16- and 32-byte blocks", test_blocks);

    const char *body = "{\"stream\":true,\"max_tokens\":5,\"messages\":[{\"model\":\"inner\"}],\"model\":\"claude-x\",\"z\":{\"model\":1}}";
    is_int(inspect(body, &info, err), 0);
    is_str(info.model, "claude-x");
    is_int(info.model_len, 8);
    ok(info.stream);
    ok(info.has_messages);
    ok(info.has_max_tokens);
    /* the offsets span the quoted string, for a rename in place */
    is_int(body[info.model_offset], '"');
    is_int(info.model_end - info.model_offset, 10);
    ok(memcmp(body + info.model_offset, "\"claude-x\"", 10) == 0);

    /* escapes are decoded, and the offsets still cover the raw string */
    body = "{\"model\":\"gpt\\u002d5 \\\"q\\\\\"}";
    is_int(inspect(body, &info, err), 0);
    is_str(info.model, "gpt-5 \"q\\");
    is_int(info.model_offset, 9);
    is_int(info.model_end, strlen(body) - 1);
    /* a lone surrogate becomes U+FFFD, a NUL stays in the name (model_len counts it), a long escaped name is measured
     * decoded: 255 characters spelt as 1,530 bytes of escapes fit, 256 do not */
    is_int(inspect("{\"model\":\"c-\\udc00\\ud800x\"}", &info, err), 0);
    is_str(info.model, "c-\xef\xbf\xbd\xef\xbf\xbdx");
    is_int(inspect("{\"model\":\"a\\u0000b\"}", &info, err), 0);
    is_int(info.model_len, 3);
    ok(memcmp(info.model, "a\0b", 4) == 0);
    {
        char big[64 + 6 * 256];
        for (int n = 255; n <= 256; ++n) {
            size_t o = (size_t)sprintf(big, "{\"model\":\"");
            for (int i = 0; i != n; ++i)
                o += (size_t)sprintf(big + o, "\\u0041");
            sprintf(big + o, "\"}");
            is_int(inspect(big, &info, err), n == 255 ? 0 : -1);
            is_int(info.model_len, n == 255 ? 255 : 0);
        }
    }

    is_int(inspect("{\"stream\":false,\"messages\":\"x\",\"max_tokens\":\"1\"}", &info, err), 0);
    is_int(info.model_len, 0);
    ok(!info.stream && !info.has_messages && !info.has_max_tokens);
    /* present with the wrong type is told apart from missing, and null counts as missing */
    is_int(info.given, PGW_REQBODY_MESSAGES | PGW_REQBODY_MAX_TOKENS);
    is_int(inspect("{\"model\":42}", &info, err), 0);
    is_int(info.model_len, 0);
    is_int(info.given, PGW_REQBODY_MODEL);
    is_int(inspect("{\"model\":null,\"max_tokens\":null,\"x\":{\"messages\":1}}", &info, err), 0);
    is_int(info.given, 0);

    is_int(inspect("", &info, err), -1);
    ok(strstr(err, "empty") != NULL);
    is_int(inspect("{", &info, err), -1);
    ok(strstr(err, "not valid JSON") != NULL);
    is_int(inspect("[]", &info, err), -1);
    ok(strstr(err, "JSON object") != NULL);
    is_int(inspect("{} {}", &info, err), -1);
    is_int(inspect("{\"a\":\"\xff\"}", &info, err), -1);

    is_int(inspect("{\"model\":\"a\",\"max_tokens\":1,\"model\":\"b\"}", &info, err), -1);
    is_str(err, "model: given more than once");

    char longname[400];
    snprintf(longname, sizeof(longname), "{\"model\":\"%0300d\"}", 0);
    is_int(inspect(longname, &info, err), -1);
    ok(strncmp(err, "model:", 6) == 0);

    /* the scanner accepts exactly RFC 8259 JSON: every kind of value, at any depth, with whitespace around it */
    is_int(inspect(" \t\r\n{ \"a\" : [ 1 , -0.5e+3 , 0 , 1E9 , true , false , null , \"\\u00e9\\n\\/\" , { } , [ ] ] ,"
                   "\"b\":{\"c\":[[[{\"d\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}]]]},\"model\":\"m\"} \n", &info, err), 0);
    is_str(info.model, "m");
    const char *bad[] = {
        "{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":nul}",
        "{\"a\":True}", "{\"a\":[1,]}", "{\"a\":1,}", "{,}", "{\"a\" 1}", "{a:1}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12g4\"}",
        "{\"a\":\"tab\there\"}", "{\"a\":1]", "{\"a\":[1}", "{\"a\":1}}", "{\"a\":1}x", "{\"a\":1}\"", "{\"a\":1\x0b}",
        /* not UTF-8 by RFC 3629: overlong '/', an encoded surrogate, past U+10FFFF, a lone continuation byte, cut short */
        "{\"a\":\"\xc0\xaf\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\x80\"}",
        "{\"a\":\"\xe2\x82\"}", "{\"a\":\"abc", "{\"a\":\"abc\\", "{\"a\":\"\\u00", "{\"a\"", "{\"a\":", "   ",
    };
    for (size_t i = 0; i != sizeof(bad) / sizeof(bad[0]); ++i) {
        int refused = inspect(bad[i], &info, err) == -1 && strstr(err, "not valid JSON") != NULL;
        if (!refused)
            note("accepted or misreported %s: %s", bad[i], err);
        ok(refused);
    }
    is_int(inspect("{\"a\":\"\xff\"}", &info, err), -1);
    ok(strstr(err, "UTF8") != NULL && strstr(err, "at byte 6") != NULL);
    /* long runs of plain bytes are skipped eight at a time: a quote, a backslash or a control byte at any offset is seen */
    for (size_t at = 0; at != 24; ++at) {
        char text[64];
        snprintf(text, sizeof(text), "{\"a\":\"%s\"}", "abcdefghijklmnopqrstuvwxyz");
        for (const char *c = "\"\\\x01\x7f"; *c != '\0'; ++c) {
            text[6 + at] = *c;
            int want = *c == '\x7f' ? 0 : -1; /* DEL needs no escape */
            if (*c == '\\' && strchr("bfnrt", text[7 + at]) != NULL)
                want = 0; /* "\\b" .. "\\t" are escapes; a backslash before any other letter is not */
            int got = inspect(text, &info, err);
            if (got != want)
                note("byte 0x%02x at %zu: %s", *c, at, err);
            is_int(got, want);
            text[6 + at] = 'a';
        }
    }
    /* an empty messages array is told apart (the Anthropic API refuses it); the last "messages" counts, at the top only */
    is_int(inspect("{\"messages\":[ \n ]}", &info, err), 0);
    ok(info.has_messages && info.no_messages);
    is_int(inspect("{\"messages\":[{}]}", &info, err), 0);
    ok(info.has_messages && !info.no_messages);
    is_int(inspect("{\"messages\":[],\"messages\":[1]}", &info, err), 0);
    ok(info.has_messages && !info.no_messages);
    is_int(inspect("{\"messages\":[1],\"x\":{\"messages\":[]}}", &info, err), 0);
    ok(info.has_messages && !info.no_messages);
    /* a key spelt with escapes is the same key */
    is_int(inspect("{\"mod\\u0065l\":\"x\",\"str\\u0065am\":true,\"\\u006dessages\":[],\"max_tokens\":1}", &info, err), 0);
    is_str(info.model, "x");
    ok(info.stream && info.has_messages && info.has_max_tokens);
    is_int(inspect("{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", &info, err), -1);
    is_str(err, "model: given more than once");
    /* a duplicate model is refused whatever its type; the last "stream" wins, as in every parser */
    is_int(inspect("{\"model\":1,\"model\":\"b\"}", &info, err), -1);
    is_int(inspect("{\"stream\":true,\"stream\":false}", &info, err), 0);
    ok(!info.stream);
    /* depth is not limited here (later stages refuse what they cannot hold); the stack grows past its first 256 levels */
    {
        size_t n = 100000;
        char *deep = malloc(2 * n + 32);
        size_t o = (size_t)sprintf(deep, "{\"metadata\":");
        memset(deep + o, '[', n);
        memset(deep + o + n, ']', n);
        strcpy(deep + o + 2 * n, "}");
        is_int(inspect(deep, &info, err), 0);
        deep[o + 2 * n - 1] = '}';
        is_int(inspect(deep, &info, err), -1);
        free(deep);
    }
    /* not an object: refused before the rest is read */
    is_int(inspect("[" , &info, err), -1);
    ok(strstr(err, "JSON object") != NULL);
}
