/* poe-gateway: MIT licence. A route's extra_body, parsed once at load (docs/mapping.md#extra-body).
 *
 * The loader writes extra_body from YAML as JSON object members. Each translated request merges them at its top level,
 * and the translator must know which names they hold (a member wins over the field the translation would compute). So
 * the members are parsed here once, when the configuration loads, rather than on every request: wrapped in braces, one
 * yajl pass notes where each top-level member's value starts and ends, and keeps its name as yajl decoded it. The
 * result is one allocation (the struct, the array of members, then their names and values), so that a translation that
 * runs on the thread pool can take a copy of it with one memcpy, and the configuration free it with one free().
 */
#include <stdlib.h>
#include <string.h>
#include <h2o/socket.h>
#include <yajl/yajl_parse.h>
#include "common/json.h"
#include "config/extra_body.h"

struct member {
    size_t name_off, name_len;   /* in `names`, decoded */
    size_t value_off, value_len; /* in `text`, raw */
};

struct parse {
    h2o_buffer_t *text; /* "{" + members + "}" */
    h2o_buffer_t *names;
    H2O_VECTOR(struct member) members;
    yajl_handle handle;
    int depth;
};

/* A value ended: when it is a member's (at depth 1), its text ends where the parser stands. */
static int value_end(struct parse *p)
{
    if (p->depth == 1 && p->members.size != 0) {
        struct member *m = &p->members.entries[p->members.size - 1];
        m->value_len = yajl_get_bytes_consumed(p->handle) - m->value_off;
    }
    return 1;
}

static int on_null(void *ctx)
{
    return value_end(ctx);
}

static int on_bool(void *ctx, int b)
{
    return value_end(ctx);
}

static int on_number(void *ctx, const char *v, size_t len)
{
    return value_end(ctx);
}

static int on_string(void *ctx, const unsigned char *v, size_t len)
{
    return value_end(ctx);
}

static int on_open(void *ctx)
{
    struct parse *p = ctx;
    ++p->depth;
    return 1;
}

static int on_close(void *ctx)
{
    struct parse *p = ctx;
    --p->depth;
    return value_end(p);
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
    struct parse *p = ctx;
    if (p->depth != 1)
        return 1;
    size_t at = yajl_get_bytes_consumed(p->handle);
    /* the value starts after the colon and any white space */
    while (at < p->text->size && (p->text->bytes[at] == ':' || p->text->bytes[at] == ' ' || p->text->bytes[at] == '\t' ||
                                  p->text->bytes[at] == '\n' || p->text->bytes[at] == '\r'))
        ++at;
    h2o_vector_reserve(NULL, &p->members, p->members.size + 1);
    p->members.entries[p->members.size++] = (struct member){p->names->size, len, at, 0};
    pgw_buf_append(&p->names, k, len);
    return 1;
}

static const yajl_callbacks callbacks = {on_null, on_bool, NULL,     NULL,    on_number, on_string,
                                         on_open, on_key,  on_close, on_open, on_close};

/* Lays the members out in one allocation: the struct, the array, then each name and value, NUL-terminated. */
static pgw_extra_body_t *build(const struct parse *p)
{
    size_t size = offsetof(pgw_extra_body_t, members) + p->members.size * sizeof(struct st_pgw_extra_member_t);
    for (size_t i = 0; i != p->members.size; ++i)
        size += p->members.entries[i].name_len + 1 + p->members.entries[i].value_len + 1;

    pgw_extra_body_t *x = h2o_mem_alloc(size);
    char *dst = (char *)(x->members + p->members.size);
    x->size = size;
    x->num_members = p->members.size;
    for (size_t i = 0; i != p->members.size; ++i) {
        const struct member *m = &p->members.entries[i];
        x->members[i].name = h2o_iovec_init(dst, m->name_len);
        if (m->name_len != 0) /* an empty name may have left the names buffer unallocated: no pointer to copy from */
            memcpy(dst, p->names->bytes + m->name_off, m->name_len);
        dst += m->name_len;
        *dst++ = '\0';
        x->members[i].value = h2o_iovec_init(dst, m->value_len);
        memcpy(dst, p->text->bytes + m->value_off, m->value_len);
        dst += m->value_len;
        *dst++ = '\0';
    }
    return x;
}

pgw_extra_body_t *pgw_extra_body_parse(const char *members, size_t len)
{
    struct parse p = {NULL};
    pgw_extra_body_t *x = NULL;

    h2o_buffer_init(&p.text, &h2o_socket_buffer_prototype);
    h2o_buffer_init(&p.names, &h2o_socket_buffer_prototype);
    pgw_buf_append_lit(&p.text, "{");
    pgw_buf_append(&p.text, members, len);
    pgw_buf_append_lit(&p.text, "}");
    p.handle = yajl_alloc(&callbacks, &pgw_yajl_alloc_funcs, &p);
    if (yajl_parse(p.handle, (const unsigned char *)p.text->bytes, p.text->size) == yajl_status_ok &&
        yajl_complete_parse(p.handle) == yajl_status_ok)
        x = build(&p);
    yajl_free(p.handle);
    h2o_buffer_dispose(&p.text);
    h2o_buffer_dispose(&p.names);
    free(p.members.entries);
    return x;
}

pgw_extra_body_t *pgw_extra_body_dup(const pgw_extra_body_t *x)
{
    if (x == NULL)
        return NULL;
    pgw_extra_body_t *dup = h2o_mem_alloc(x->size);
    memcpy(dup, x, x->size);
    /* the same layout: each pointer moves by as much as the allocation did */
    for (size_t i = 0; i != dup->num_members; ++i) {
        dup->members[i].name.base = (char *)dup + (x->members[i].name.base - (const char *)x);
        dup->members[i].value.base = (char *)dup + (x->members[i].value.base - (const char *)x);
    }
    return dup;
}

int pgw_extra_body_has(const pgw_extra_body_t *x, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; x != NULL && i != x->num_members; ++i)
        if (x->members[i].name.len == len && memcmp(x->members[i].name.base, name, len) == 0)
            return 1;
    return 0;
}

void pgw_extra_body_append(const pgw_extra_body_t *x, h2o_buffer_t **out)
{
    for (size_t i = 0; x != NULL && i != x->num_members; ++i) {
        const struct st_pgw_extra_member_t *m = &x->members[i];
#define IS(lit) (m->name.len == sizeof(lit) - 1 && memcmp(m->name.base, lit, m->name.len) == 0)
        if (IS("model") || IS("messages") || IS("stream") || IS("stream_options"))
            continue;
#undef IS
        pgw_buf_append_lit(out, ",\"");
        pgw_json_append_escaped(out, m->name.base, m->name.len);
        pgw_buf_append_lit(out, "\":");
        pgw_buf_append(out, m->value.base, m->value.len);
    }
}
