/* poe-gateway: MIT licence. Tool names as sent upstream and back (docs/mapping.md#tool-names), and tool-call ids made
 * safe (docs/mapping.md#identifiers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include <h2o/string_.h>
#include "translate.h"

/* a name too long (or colliding) keeps this many characters, then '_' and 8 hex digits of its SHA-256 */
#define HASHED_PREFIX 55

typedef __typeof__(((pgw_toolnames_t *)NULL)->entries[0]) entry_t;

/*
 * `entries` points into one allocation that starts with this header (h2o_mem_alloc_shared's idiom); only this file makes or
 * frees it, so pgw_toolnames_t stays two plain fields. The index is keyed by the hash of each original's plain mapping
 * (pgw_toolname_map), which makes adding a name, finding a collision and looking up an original O(1): a request with
 * hundreds of MCP tools costs no quadratic work.
 */
struct names_block {
    size_t capacity;      /* entries that fit */
    size_t num_slots;     /* a power of two, at least four times the capacity */
    uint32_t *slots;      /* entry number + 1 per used slot, 0 when free; owned */
    uint32_t *plain_hash; /* per entry: hash of pgw_toolname_map(original); owned */
    entry_t entries[];
};

static int is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The byte length of the UTF-8 character at `s`; 1 for ASCII and for a byte that starts no well-formed sequence. */
static size_t char_len(const unsigned char *s, size_t avail)
{
    size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 1;
    if (n > avail)
        return 1;
    for (size_t i = 1; i < n; ++i)
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    return n;
}

/* Writes at most `max` characters of the sanitised form (one '_' per other character) and returns its full length. */
static size_t sanitise(const char *in, size_t len, char *out, size_t max)
{
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    size_t n = 0;
    while (p != end) {
        size_t cl = char_len(p, end - p);
        if (n < max)
            out[n] = cl == 1 && is_name_char(*p) ? (char)*p : '_';
        ++n;
        p += cl;
    }
    return n;
}

/* The hashed form: the first 55 sanitised characters, '_', then 8 hex digits of SHA-256 over the original bytes. */
static void hashed_form(const char *name, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[SHA256_DIGEST_LENGTH];
    size_t n = sanitise(name, len, out, HASHED_PREFIX);

    if (n > HASHED_PREFIX)
        n = HASHED_PREFIX;
    SHA256((const unsigned char *)name, len, digest);
    out[n++] = '_';
    for (size_t i = 0; i != 4; ++i) {
        out[n++] = hex[digest[i] >> 4];
        out[n++] = hex[digest[i] & 15];
    }
    out[n] = '\0';
}

void pgw_toolname_map(const char *name, size_t len, char *out)
{
    size_t n = sanitise(name, len, out, PGW_TOOLNAME_MAX);
    if (n == 0) {
        /* the pattern needs one character at least */
        out[n++] = '_';
    } else if (n > PGW_TOOLNAME_MAX) {
        hashed_form(name, len, out);
        return;
    }
    out[n] = '\0';
}

static uint32_t hash_name(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i != len; ++i)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static struct names_block *get_block(const pgw_toolnames_t *names)
{
    return names->entries != NULL ? H2O_STRUCT_FROM_MEMBER(struct names_block, entries, names->entries) : NULL;
}

static int same(const char *a, const char *b, size_t blen)
{
    return strlen(a) == blen && memcmp(a, b, blen) == 0;
}

/* Makes room for one more entry, rebuilding the index when the block grows. */
static struct names_block *reserve(pgw_toolnames_t *names)
{
    struct names_block *b = get_block(names);
    if (b != NULL && names->num_entries < b->capacity)
        return b;

    size_t capacity = b != NULL ? b->capacity * 2 : 16;
    b = h2o_mem_realloc(b, offsetof(struct names_block, entries) + capacity * sizeof(entry_t));
    if (names->entries == NULL) {
        b->slots = NULL;
        b->plain_hash = NULL;
    }
    b->capacity = capacity;
    b->num_slots = capacity * 4;
    free(b->slots);
    b->slots = h2o_mem_alloc(b->num_slots * sizeof(b->slots[0]));
    memset(b->slots, 0, b->num_slots * sizeof(b->slots[0]));
    b->plain_hash = h2o_mem_realloc(b->plain_hash, capacity * sizeof(b->plain_hash[0]));
    names->entries = b->entries;

    size_t mask = b->num_slots - 1;
    for (size_t k = 0; k != names->num_entries; ++k) {
        size_t i = b->plain_hash[k] & mask;
        while (b->slots[i] != 0)
            i = (i + 1) & mask;
        b->slots[i] = (uint32_t)(k + 1);
    }
    return b;
}

void pgw_toolnames_add(pgw_toolnames_t *names, const char *original, size_t len)
{
    char plain[PGW_TOOLNAME_MAX + 1], other[PGW_TOOLNAME_MAX + 1];
    struct names_block *b = reserve(names);
    int collided = 0;

    pgw_toolname_map(original, len, plain);
    uint32_t h = hash_name(plain, strlen(plain));
    size_t mask = b->num_slots - 1, i;
    for (i = h & mask; b->slots[i] != 0; i = (i + 1) & mask) {
        entry_t *e = &names->entries[b->slots[i] - 1];
        if (b->plain_hash[b->slots[i] - 1] != h)
            continue;
        if (same(e->original, original, len))
            return; /* already known: a tool listed twice */
        pgw_toolname_map(e->original, strlen(e->original), other);
        if (strcmp(other, plain) != 0)
            continue;
        /* names colliding after mapping both take the hashed form (every earlier one of a group of three or more;
         * docs/mapping.md#tool-names) */
        collided = 1;
        if (strcmp(e->mapped, plain) == 0) {
            hashed_form(e->original, strlen(e->original), other);
            free(e->mapped);
            e->mapped = h2o_strdup(NULL, other, strlen(other)).base;
        }
    }

    entry_t *e = &names->entries[names->num_entries];
    e->original = h2o_strdup(NULL, original, len).base;
    if (collided)
        hashed_form(original, len, plain);
    e->mapped = h2o_strdup(NULL, plain, strlen(plain)).base;
    b->plain_hash[names->num_entries] = h;
    b->slots[i] = (uint32_t)(++names->num_entries);
}

const char *pgw_toolnames_mapped(const pgw_toolnames_t *names, const char *original, size_t len)
{
    struct names_block *b = get_block(names);
    char plain[PGW_TOOLNAME_MAX + 1];

    if (b == NULL)
        return NULL;
    pgw_toolname_map(original, len, plain);
    uint32_t h = hash_name(plain, strlen(plain));
    size_t mask = b->num_slots - 1;
    for (size_t i = h & mask; b->slots[i] != 0; i = (i + 1) & mask) {
        size_t k = b->slots[i] - 1;
        if (b->plain_hash[k] == h && same(names->entries[k].original, original, len))
            return names->entries[k].mapped;
    }
    return NULL;
}

const char *pgw_toolnames_original(const pgw_toolnames_t *names, const char *mapped, size_t len, size_t *out_len)
{
    struct names_block *b = get_block(names);

    if (b != NULL) {
        /* an uncollided name is its own plain mapping, so the index finds it; hashed forms fall back to a scan */
        uint32_t h = hash_name(mapped, len);
        size_t mask = b->num_slots - 1;
        for (size_t i = h & mask; b->slots[i] != 0; i = (i + 1) & mask) {
            size_t k = b->slots[i] - 1;
            if (b->plain_hash[k] == h && same(names->entries[k].mapped, mapped, len)) {
                *out_len = strlen(names->entries[k].original);
                return names->entries[k].original;
            }
        }
        for (size_t k = 0; k != names->num_entries; ++k) {
            if (same(names->entries[k].mapped, mapped, len)) {
                *out_len = strlen(names->entries[k].original);
                return names->entries[k].original;
            }
        }
    }
    *out_len = len;
    return mapped;
}

void pgw_toolnames_dispose(pgw_toolnames_t *names)
{
    struct names_block *b = get_block(names);

    if (b != NULL) {
        for (size_t k = 0; k != names->num_entries; ++k) {
            free(names->entries[k].original);
            free(names->entries[k].mapped);
        }
        free(b->slots);
        free(b->plain_hash);
        free(b);
    }
    names->entries = NULL;
    names->num_entries = 0;
}

void pgw_toolcall_id_sanitise(const char *id, size_t len, char *out, size_t outsz)
{
    if (outsz == 0)
        return;
    size_t n = sanitise(id, len, out, outsz - 1);
    out[n < outsz - 1 ? n : outsz - 1] = '\0';
}
