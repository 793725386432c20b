/* poe-gateway: MIT licence. Unit tests for src/reqbody.c. */
#include <string.h>
#include "../../../src/reqbody.c"
#include "../test.h"

static int inspect(const char *body, pgw_reqbody_t *info, char *err)
{
    err[0] = '\0';
    return pgw_reqbody_inspect(body, strlen(body), info, err, 256);
}

void test_src__reqbody_c(void)
{
    pgw_reqbody_t info;
    char err[256];

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

    is_int(inspect("{\"stream\":false,\"messages\":\"x\",\"max_tokens\":\"1\"}", &info, err), 0);
    is_int(info.model_len, 0);
    ok(!info.stream && !info.has_messages && !info.has_max_tokens);
    is_int(inspect("{\"model\":42}", &info, err), 0);
    is_int(info.model_len, 0);

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
}
