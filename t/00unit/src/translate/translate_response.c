/* poe-gateway: MIT licence. Unit tests for src/translate/translate_response.c: golden whole responses and argument repair. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <h2o/string_.h>
#include "../../../../src/translate/translate_response.c"
#include "../../test.h"

#define RESPONSES_DIR "t/assets/responses"
#define TEST_MSG_ID "msg_4f6a0c2e9b1d7a3c5e8f0b2d"

/* the buffer's bytes as a C string (a NUL is written past the end, not counted) */
static const char *cstr(h2o_buffer_t **b)
{
    h2o_buffer_reserve(b, 1).base[0] = '\0';
    return (*b)->bytes;
}

/*
 * One case directory: upstream.json (Poe's body), expected.json (the client's body; a failure is "HTTP <status>" on
 * the first line and the error body on the second), and an optional `options` file of key=value lines: model,
 * input_tokens, stop (up to 4; "\n" stands for a newline), tool (an original tool name of the request, repeatable),
 * web_search (the request searched).
 * Returns the transcript.
 */
static char *run_case(const char *name, char **expected)
{
    char path[512], model[64] = "gpt-5.4-mini", stops[4][64];
    pgw_response_opts_t opts = {TEST_MSG_ID, model, 1000};
    pgw_toolnames_t toolnames = {NULL};
    pgw_upstream_failure_t fail;
    size_t len, num_stops = 0;
    h2o_buffer_t *out;

    opts.toolnames = &toolnames;
    snprintf(path, sizeof(path), "%s/%s/options", RESPONSES_DIR, name);
    char *options = read_whole_file(path, &len);
    if (options != NULL) {
        for (char *line = strtok(options, "\n"); line != NULL; line = strtok(NULL, "\n")) {
            char *eq = strchr(line, '=');
            if (eq == NULL)
                continue;
            *eq = '\0';
            const char *k = line, *v = eq + 1;
            if (strcmp(k, "model") == 0) {
                snprintf(model, sizeof(model), "%s", v);
            } else if (strcmp(k, "input_tokens") == 0) {
                opts.input_tokens = strtoll(v, NULL, 10);
            } else if (strcmp(k, "stop") == 0 && num_stops < 4) {
                size_t o = 0;
                for (; *v != '\0' && o + 1 < sizeof(stops[0]); ++v)
                    stops[num_stops][o++] = v[0] == '\\' && v[1] == 'n' ? (++v, '\n') : *v;
                stops[num_stops][o] = '\0';
                opts.stop_sequences[num_stops] = stops[num_stops];
                ++num_stops;
            } else if (strcmp(k, "tool") == 0) {
                pgw_toolnames_add(&toolnames, v, strlen(v));
            } else if (strcmp(k, "web_search") == 0) {
                opts.web_search = atoi(v);
            }
        }
        free(options);
    }
    snprintf(path, sizeof(path), "%s/%s/expected.json", RESPONSES_DIR, name);
    if ((*expected = read_whole_file(path, &len)) != NULL && len != 0 && (*expected)[len - 1] == '\n')
        (*expected)[len - 1] = '\0';
    snprintf(path, sizeof(path), "%s/%s/upstream.json", RESPONSES_DIR, name);
    char *body = read_whole_file(path, &len);
    if (body == NULL)
        body = strdup("");

    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    if (pgw_translate_response(body, len, &opts, &out, &fail) != 0) {
        char head[32];
        ok(out->size == 0); /* nothing written on failure */
        out->size = 0;
        pgw_buf_append(&out, head, snprintf(head, sizeof(head), "HTTP %d\n", fail.status));
        pgw_error_json(&out, fail.type, fail.message, strlen(fail.message));
    }
    char *got = strdup(cstr(&out));
    h2o_buffer_dispose(&out);
    free(body);
    pgw_toolnames_dispose(&toolnames);
    return got;
}

/*
 * Checks a message against docs/mapping.md#the-whole-response whatever the case: valid JSON; the envelope; blocks in the
 * order thinking -> server_tool_use -> web_search_tool_result -> text -> tool_use, none empty, the search blocks
 * paired and counted in usage.server_tool_use; every tool input an object; usage with the four integers. Returns NULL or
 * what is wrong.
 */
static const char *check_message(const char *json)
{
    char err[128];
    const char *why = NULL;
    yajl_val root = yajl_tree_parse(json, err, sizeof(err));
    if (root == NULL)
        return "not JSON";
    const char *type = get_str(root, "type", NULL), *role = get_str(root, "role", NULL), *id = get_str(root, "id", NULL);
    yajl_val content = get(root, "content", NULL, yajl_t_array), usage = get(root, "usage", NULL, yajl_t_object);
    if (type == NULL || strcmp(type, "message") != 0 || role == NULL || strcmp(role, "assistant") != 0 || id == NULL ||
        strcmp(id, TEST_MSG_ID) != 0) {
        why = "bad envelope";
        goto Exit;
    }
    if (content == NULL || usage == NULL || get_str(root, "stop_reason", NULL) == NULL) {
        why = "content, usage or stop_reason missing";
        goto Exit;
    }
    int rank = 0, searched = 0;
    for (size_t i = 0; i != content->u.array.len; ++i) {
        yajl_val b = content->u.array.values[i];
        const char *bt = get_str(b, "type", NULL);
        int r = bt == NULL                                  ? 9
                : strcmp(bt, "thinking") == 0               ? 1
                : strcmp(bt, "server_tool_use") == 0        ? 4
                : strcmp(bt, "web_search_tool_result") == 0 ? 5
                : strcmp(bt, "text") == 0                   ? 6
                : strcmp(bt, "tool_use") == 0               ? 7
                                                            : 9;
        if (r == 9 || r < rank || (r == 4 && r == rank) || (r == 5 && rank != 4)) {
            why = "blocks out of order or of an unknown type";
            goto Exit;
        }
        rank = r;
        if (r == 5 && (get(b, "content", NULL, yajl_t_array) == NULL ||
                       strcmp(get_str(b, "tool_use_id", NULL), get_str(content->u.array.values[i - 1], "id", NULL)) != 0 ||
                       get_int(usage, "server_tool_use", "web_search_requests") != 1)) {
            why = "a web_search_tool_result without its server_tool_use, content or usage";
            goto Exit;
        }
        searched |= r == 5;
        if (r == 4 || r == 5)
            continue; /* nothing more to check in a search block */
        if (r != 1)
            r -= 4; /* text 2, tool_use 3 below */
        if ((r == 1 && (!nonempty(get_str(b, "thinking", NULL)) || get_str(b, "signature", NULL) == NULL)) ||
            (r == 2 && !nonempty(get_str(b, "text", NULL)))) {
            why = "an empty thinking or text block";
            goto Exit;
        }
        if (r == 3 && (get(b, "input", NULL, yajl_t_object) == NULL || !nonempty(get_str(b, "id", NULL)) ||
                       !nonempty(get_str(b, "name", NULL)))) {
            why = "a tool_use without an object input, an id or a name";
            goto Exit;
        }
    }
    if (rank == 4 || (!searched && get(usage, "server_tool_use", NULL, yajl_t_any) != NULL)) {
        why = "a server_tool_use without its result, or usage.server_tool_use without a search";
        goto Exit;
    }
    const char *fields[] = {"input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"};
    for (size_t i = 0; i != 4; ++i)
        if (get_int(usage, fields[i], NULL) < 0) {
            why = "a usage field is missing";
            goto Exit;
        }
Exit:
    yajl_tree_free(root);
    return why;
}

static void test_fixtures(void)
{
    char *names[256];
    size_t num = list_fixtures(RESPONSES_DIR, names, 256);

    ok(num >= 20);
    for (size_t i = 0; i != num; ++i) {
        char *expected, *got;
        note("case %s", names[i]);
        got = run_case(names[i], &expected);
        ok(expected != NULL);
        is_str(got, expected);
        if (strncmp(got, "HTTP ", 5) != 0) {
            const char *why = check_message(got);
            is_str(why, NULL);
        }
        free(got);
        free(expected);
        free(names[i]);
    }
}

static void repaired(const char *in, const char *expected)
{
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    if (repair_json(in, strlen(in), &out) == 0)
        is_str(cstr(&out), expected);
    else
        is_str(NULL, expected);
    h2o_buffer_dispose(&out);
}

static void test_repair(void)
{
    repaired("{\"a\":\"hel", "{\"a\":\"hel\"}");
    repaired("{\"a\": [1, 2", "{\"a\": [1, 2]}");
    repaired("{\"a\": [1, 2.", "{\"a\": [1]}");
    repaired("{\"a\":1,\"b", "{\"a\":1}");
    repaired("{\"a\":1,", "{\"a\":1}");
    repaired("{\"a\":1, \"b\":", "{\"a\":1}");
    repaired("{\"a\":", "{}");
    repaired("{\"a\":tru", "{}");
    repaired("{\"a\":true", "{\"a\":true}");
    repaired("{\"a\":\"x\\", "{\"a\":\"x\"}");
    repaired("{\"a\":\"x\\u00", "{\"a\":\"x\"}");
    repaired("{\"a\":\"x\\u00e9", "{\"a\":\"x\\u00e9\"}");
    repaired("{\"a\":\"q\\\"", "{\"a\":\"q\\\"\"}");
    repaired("{\"a\":{\"b\":[{\"c\":\"d", "{\"a\":{\"b\":[{\"c\":\"d\"}]}}");
    repaired("{\"a\":{}", "{\"a\":{}}");
    repaired("{", "{}");
    repaired("{\"a\" 1}", NULL);
    repaired("{\"a\":1}}", NULL);
    repaired("nope", NULL);

    ok(is_json_object(H2O_STRLIT("{\"a\":[1,{}]}")));
    ok(!is_json_object(H2O_STRLIT("[1]")));
    ok(!is_json_object(H2O_STRLIT("\"{}\"")));
    ok(!is_json_object(H2O_STRLIT("{}{}")));
    ok(!is_json_object(H2O_STRLIT("{} x")));
    ok(!is_json_object("{}\0{", 3));
    /* yajl takes trailing bytes that open a string for a token still arriving, and says the parse succeeded */
    ok(!is_json_object(H2O_STRLIT("{\"a\":1}\"x")));
    ok(!is_json_object(H2O_STRLIT("{}\"")));
    ok(!is_json_object(H2O_STRLIT("{\"a\":\"}\"}\"")));
    repaired("{\"a\":1}\"x", NULL);

    /* an invalid input is logged, and becomes {} */
    char log[512];
    h2o_buffer_t *out;
    h2o_buffer_init(&out, &h2o_socket_buffer_prototype);
    stderr_capture_begin();
    append_input(&out, H2O_STRLIT("{\"command\" \"ls\"}"), "Bash");
    stderr_capture_end(log, sizeof(log));
    is_str(cstr(&out), "{}");
    ok(strstr(log, "tool Bash: arguments are not a JSON object") != NULL);
    out->size = 0;
    append_input(&out, H2O_STRLIT("  \n "), "Bash");
    is_str(cstr(&out), "{}");
    out->size = 0;
    append_input(&out, H2O_STRLIT(" {\"a\": 1} "), "Bash");
    is_str(cstr(&out), "{\"a\": 1}");
    h2o_buffer_dispose(&out);
}

void test_src__translate_response_c(void)
{
    subtest("fixtures", test_fixtures);
    subtest("argument repair", test_repair);
}
