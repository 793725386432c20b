/* poe-gateway: MIT licence. Tool names as sent upstream and back (docs/mapping.md#tool-names), and tool-call ids made
 * safe (docs/mapping.md#identifiers). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/sha.h>
#include <h2o/string_.h>
#include "translate/translate.h"

/* a name too long (or colliding) keeps this many characters, then '_' and 8 hex digits of its SHA-256 */
#define HASHED_PREFIX 55

typedef __typeof__(((pgw_toolnames_t *)NULL)->entries[0]) entry_t;

/*
 * `entries` points into one allocation that starts with this header (h2o_mem_alloc_shared's idiom); only this file makes or
 * frees it, so pgw_toolnames_t stays two plain fields. Three open-addressing indexes of entry numbers make adding a name
 * and both lookups O(1) on average however many names collide after mapping, so a request's work on its tools is linear
 * in their number (names crafted for the hash to collide could still lengthen the probes: the request translator caps
 * the number of tools, which bounds that too):
 *   - by original: finds a tool listed twice, and answers pgw_toolnames_mapped;
 *   - by plain mapping (pgw_toolname_map): the first entry of each group of names that map alike, so that a collision
 *     is found without walking the group (every later member takes the hashed form at once, the first when the second
 *     arrives);
 *   - by mapped name: answers pgw_toolnames_original. A renamed entry leaves its old slot behind; a lookup skips a slot
 *     whose entry's current name differs. An entry is renamed once at most, so it holds two slots at most, and every
 *     index stays at most half full.
 */
struct names_block {
    size_t capacity;  /* entries that fit */
    size_t num_slots; /* per index: a power of two, at least four times the capacity */
    uint32_t *by_original, *by_plain, *by_mapped; /* entry number + 1 per used slot, 0 when free; owned */
    struct entry_hashes {
        uint32_t original, plain, mapped; /* of the original, its plain mapping and its current name */
        int leader;                       /* the first of its plain mapping: in by_plain */
    } *hashes;                            /* per entry; owned */
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

/* Puts entry `k` (0-based) into `index` under `hash`, at the first free slot of its probe sequence. */
static void index_put(struct names_block *b, uint32_t *index, uint32_t hash, size_t k)
{
    size_t mask = b->num_slots - 1, i = hash & mask;
    while (index[i] != 0)
        i = (i + 1) & mask;
    index[i] = (uint32_t)(k + 1);
}

static uint32_t *index_alloc(size_t num_slots)
{
    uint32_t *index = h2o_mem_alloc(num_slots * sizeof(*index));
    memset(index, 0, num_slots * sizeof(*index));
    return index;
}

/* Makes room for one more entry, rebuilding the indexes when the block grows. */
static struct names_block *reserve(pgw_toolnames_t *names)
{
    struct names_block *b = get_block(names);
    if (b != NULL && names->num_entries < b->capacity)
        return b;

    size_t capacity = b != NULL ? b->capacity * 2 : 16;
    b = h2o_mem_realloc(b, offsetof(struct names_block, entries) + capacity * sizeof(entry_t));
    if (names->entries == NULL) {
        b->by_original = b->by_plain = b->by_mapped = NULL;
        b->hashes = NULL;
    }
    b->capacity = capacity;
    b->num_slots = capacity * 4;
    free(b->by_original);
    free(b->by_plain);
    free(b->by_mapped);
    b->by_original = index_alloc(b->num_slots);
    b->by_plain = index_alloc(b->num_slots);
    b->by_mapped = index_alloc(b->num_slots);
    b->hashes = h2o_mem_realloc(b->hashes, capacity * sizeof(b->hashes[0]));
    names->entries = b->entries;

    for (size_t k = 0; k != names->num_entries; ++k) {
        index_put(b, b->by_original, b->hashes[k].original, k);
        if (b->hashes[k].leader)
            index_put(b, b->by_plain, b->hashes[k].plain, k);
        index_put(b, b->by_mapped, b->hashes[k].mapped, k);
    }
    return b;
}

static entry_t *find_original(const pgw_toolnames_t *names, const struct names_block *b, const char *original, size_t len,
                              uint32_t h)
{
    size_t mask = b->num_slots - 1;
    for (size_t i = h & mask; b->by_original[i] != 0; i = (i + 1) & mask) {
        size_t k = b->by_original[i] - 1;
        if (b->hashes[k].original == h && same(names->entries[k].original, original, len))
            return &names->entries[k];
    }
    return NULL;
}

/* The first entry whose plain mapping is `plain`, or NULL. */
static entry_t *find_leader(const pgw_toolnames_t *names, const struct names_block *b, const char *plain, uint32_t h)
{
    char other[PGW_TOOLNAME_MAX + 1];
    size_t mask = b->num_slots - 1;
    for (size_t i = h & mask; b->by_plain[i] != 0; i = (i + 1) & mask) {
        size_t k = b->by_plain[i] - 1;
        if (b->hashes[k].plain != h)
            continue;
        const entry_t *e = &names->entries[k];
        pgw_toolname_map(e->original, strlen(e->original), other);
        if (strcmp(other, plain) == 0)
            return &names->entries[k];
    }
    return NULL;
}

/* Gives entry `e` the name `mapped` (a copy), and makes pgw_toolnames_original find it under that name. */
static void set_mapped(struct names_block *b, entry_t *e, const char *mapped)
{
    size_t k = e - b->entries, len = strlen(mapped);
    free(e->mapped);
    e->mapped = h2o_strdup(NULL, mapped, len).base;
    b->hashes[k].mapped = hash_name(mapped, len);
    index_put(b, b->by_mapped, b->hashes[k].mapped, k);
}

void pgw_toolnames_add(pgw_toolnames_t *names, const char *original, size_t len)
{
    char plain[PGW_TOOLNAME_MAX + 1], hashed[PGW_TOOLNAME_MAX + 1];
    struct names_block *b = reserve(names);
    uint32_t h_original = hash_name(original, len);

    if (find_original(names, b, original, len, h_original) != NULL)
        return; /* already known: a tool listed twice */

    pgw_toolname_map(original, len, plain);
    uint32_t h_plain = hash_name(plain, strlen(plain));
    entry_t *leader = find_leader(names, b, plain, h_plain);
    size_t k = names->num_entries++;
    entry_t *e = &names->entries[k];
    e->original = h2o_strdup(NULL, original, len).base;
    e->mapped = NULL;
    b->hashes[k] = (struct entry_hashes){h_original, h_plain, 0, leader == NULL};
    index_put(b, b->by_original, h_original, k);
    if (leader == NULL) {
        index_put(b, b->by_plain, h_plain, k);
        set_mapped(b, e, plain);
        return;
    }
    /* names colliding after mapping all take the hashed form: the group's first one when the second arrives */
    if (strcmp(leader->mapped, plain) == 0) {
        hashed_form(leader->original, strlen(leader->original), hashed);
        set_mapped(b, leader, hashed);
    }
    hashed_form(original, len, hashed);
    set_mapped(b, e, hashed);
}

const char *pgw_toolnames_mapped(const pgw_toolnames_t *names, const char *original, size_t len)
{
    struct names_block *b = get_block(names);
    if (b == NULL)
        return NULL;
    entry_t *e = find_original(names, b, original, len, hash_name(original, len));
    return e != NULL ? e->mapped : NULL;
}

const char *pgw_toolnames_original(const pgw_toolnames_t *names, const char *mapped, size_t len, size_t *out_len)
{
    struct names_block *b = get_block(names);

    if (b != NULL) {
        uint32_t h = hash_name(mapped, len);
        size_t mask = b->num_slots - 1;
        for (size_t i = h & mask; b->by_mapped[i] != 0; i = (i + 1) & mask) {
            size_t k = b->by_mapped[i] - 1;
            /* a renamed entry's old slot: its hash and name are the new ones now, so it does not match */
            if (b->hashes[k].mapped == h && same(names->entries[k].mapped, mapped, len)) {
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
        free(b->by_original);
        free(b->by_plain);
        free(b->by_mapped);
        free(b->hashes);
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
