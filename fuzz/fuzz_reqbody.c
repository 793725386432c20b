/* poe-gateway: MIT licence. libFuzzer target: the first look at every client body (src/reqbody.c), and the rename that
 * src/passthrough.c makes with its offsets.
 *
 * Input: the body. Oracles: a success that found a model gives offsets inside the body, on a quoted string whose
 * decoded value is the model; replacing that string with another (as an anthropic/ route does) leaves valid JSON. A
 * failure has a message. */
#include <h2o/socket.h>
#include "fuzz.h"
#include "json.h"
#include "reqbody.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet_logs();
    return 0;
}

/* Collects the one top-level string value of "model" as yajl decodes it. */
struct decoded {
    int depth;
    int at_model;
    char value[256];
    size_t len;
    int found;
};

static int d_string(void *ctx, const unsigned char *s, size_t len)
{
    struct decoded *d = ctx;
    if (d->at_model && len < sizeof(d->value)) {
        memcpy(d->value, s, len);
        d->len = len;
        d->found = 1;
    }
    d->at_model = 0;
    return 1;
}
static int d_scalar(void *ctx)
{
    ((struct decoded *)ctx)->at_model = 0;
    return 1;
}
static int d_null(void *ctx)
{
    return d_scalar(ctx);
}
static int d_bool(void *ctx, int b)
{
    return d_scalar(ctx);
}
static int d_number(void *ctx, const char *s, size_t l)
{
    return d_scalar(ctx);
}
static int d_start(void *ctx)
{
    struct decoded *d = ctx;
    ++d->depth;
    d->at_model = 0;
    return 1;
}
static int d_end(void *ctx)
{
    --((struct decoded *)ctx)->depth;
    return 1;
}
static int d_key(void *ctx, const unsigned char *k, size_t len)
{
    struct decoded *d = ctx;
    d->at_model = d->depth == 1 && len == 5 && memcmp(k, "model", 5) == 0;
    return 1;
}
static const yajl_callbacks dcb = {d_null, d_bool, NULL, NULL, d_number, d_string, d_start, d_key, d_end, d_start, d_end};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    memcpy(body, data, size);
    pgw_reqbody_t info;
    char err[256];
    memset(err, 'x', sizeof(err));
    if (pgw_reqbody_inspect(body, size, &info, err, sizeof(err)) != 0) {
        FUZZ_ASSERT(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0', "a refusal without a message");
        free(body);
        return 0;
    }
    FUZZ_ASSERT(fuzz_json_valid(body, size), "accepted a body that is not JSON");
    if (info.model_len != 0) {
        FUZZ_ASSERT(info.model_len < sizeof(info.model) && info.model[info.model_len] == '\0', "model not terminated");
        FUZZ_ASSERT(info.model_offset < info.model_end && info.model_end <= size, "model at [%zu, %zu) of %zu bytes", info.model_offset,
                    info.model_end, size);
        FUZZ_ASSERT(body[info.model_offset] == '"' && body[info.model_end - 1] == '"', "the offsets do not frame a string");
        /* the framed string decodes to the model */
        struct decoded d = {0};
        yajl_handle h = yajl_alloc(&dcb, NULL, &d);
        int ok = yajl_parse(h, (const unsigned char *)body, size) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
        yajl_free(h);
        FUZZ_ASSERT(ok && d.found && d.len == info.model_len && memcmp(d.value, info.model, d.len) == 0, "model '%s' is not what the body says",
                    info.model);
        /* the rename passthrough.c makes keeps the body JSON */
        h2o_buffer_t *renamed;
        h2o_buffer_init(&renamed, &h2o_socket_buffer_prototype);
        pgw_buf_append(&renamed, body, info.model_offset);
        pgw_json_append_string(&renamed, "claude-sonnet-4.5", 17);
        pgw_buf_append(&renamed, body + info.model_end, size - info.model_end);
        FUZZ_ASSERT(fuzz_json_valid(renamed->bytes, renamed->size), "the renamed body is not JSON: %.*s",
                    (int)(renamed->size > 500 ? 500 : renamed->size), renamed->bytes);
        h2o_buffer_dispose(&renamed);
    }
    free(body);
    return 0;
}
