/* poe-gateway: MIT licence. Loads compose-style KEY=value lines from a .env file without overriding the environment. */

/*
 * The whole file is read and checked before anything is set, so a malformed line leaves the environment untouched.
 * Each line is one of: blank; a comment ('#' after optional blanks); `[export ]KEY=value` with optional blanks around
 * '='. KEY is [A-Za-z_][A-Za-z0-9_]*. A value is
 * - double-quoted: \n, \r, \t, \" and \\ are unescaped, any other backslash is kept as written;
 * - single-quoted: taken literally;
 * - unquoted: up to the first blank followed by '#', trailing blanks removed.
 * Text after a closing quote may only be blanks and a comment. Quoted values end on their line (no multi-line
 * values), and ${VAR} is not interpolated. When a KEY appears twice the last line wins, as in compose; a KEY already
 * in the environment before the call is never changed. Error messages give the line number but never the line,
 * since .env files hold secrets.
 *
 * The file is read again on SIGHUP (pgw_dotenv_reload), but the environment is not changed after start-up: other
 * threads read it (libcurl's proxy variables), and setenv(3) beside getenv(3) is not thread-safe. So the configuration
 * looks variables up with pgw_dotenv_getenv, which answers, for a name the first load set, from the file as last read
 * (gone when the line is gone); for a name the process was started with, from the environment (which wins, as at
 * start-up); for any other, from the file as last read. See docs/config.md#reload.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "common/log.h"
#include "config/config.h"

#define MODULE_NAME "dotenv"
#define MAX_DOTENV_BYTES (1024 * 1024)

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_name_char(char c, int first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (!first && c >= '0' && c <= '9');
}

/* Accepts what may follow a value: blanks, then nothing or a comment. */
static int only_comment_left(const char *p, const char *end)
{
    while (p != end && is_blank(*p))
        ++p;
    return p == end || *p == '#';
}

/*
 * Parses the line [p, end) and appends "KEY\0value\0" at *out (nothing for blank and comment lines). Returns NULL
 * on success or a description of what is wrong.
 */
static const char *parse_line(const char *p, const char *end, char **out)
{
    char *w = *out;
    const char *q;

    if (memchr(p, '\0', end - p) != NULL)
        return "a NUL byte in the line";
    while (p != end && is_blank(*p))
        ++p;
    if (p == end || *p == '#')
        return NULL;
    if (end - p >= 7 && memcmp(p, "export", 6) == 0 && is_blank(p[6])) {
        p += 6;
        while (p != end && is_blank(*p))
            ++p;
    }

    if (p == end || !is_name_char(*p, 1))
        return "expected KEY=value";
    while (p != end && is_name_char(*p, 0))
        *w++ = *p++;
    *w++ = '\0';
    while (p != end && is_blank(*p))
        ++p;
    if (p == end || *p != '=')
        return "expected '=' after the variable name";
    ++p;
    while (p != end && is_blank(*p))
        ++p;

    if (p != end && *p == '"') {
        for (++p;; ++p) {
            if (p == end)
                return "unterminated double-quoted value";
            if (*p == '"')
                break;
            if (*p == '\\' && p + 1 != end) {
                switch (p[1]) {
                case 'n':
                    *w++ = '\n';
                    break;
                case 'r':
                    *w++ = '\r';
                    break;
                case 't':
                    *w++ = '\t';
                    break;
                case '"':
                case '\\':
                    *w++ = p[1];
                    break;
                default:
                    *w++ = '\\';
                    *w++ = p[1];
                    break;
                }
                ++p;
            } else {
                *w++ = *p;
            }
        }
        if (!only_comment_left(p + 1, end))
            return "unexpected text after the closing quote";
    } else if (p != end && *p == '\'') {
        if ((q = memchr(p + 1, '\'', end - (p + 1))) == NULL)
            return "unterminated single-quoted value";
        memcpy(w, p + 1, q - (p + 1));
        w += q - (p + 1);
        if (!only_comment_left(q + 1, end))
            return "unexpected text after the closing quote";
    } else {
        /* q[-1] is always in the line: at worst it is the '=' */
        for (q = p; q != end && !(*q == '#' && is_blank(q[-1])); ++q)
            ;
        while (q != p && is_blank(q[-1]))
            --q;
        memcpy(w, p, q - p);
        w += q - p;
    }
    *w++ = '\0';
    *out = w;
    return NULL;
}

/* What the last pgw_dotenv_load read, for pgw_dotenv_getenv and pgw_dotenv_reload. Only the thread that loads
 * configurations (the main thread: start-up, SIGHUP) touches it. */
static struct {
    char *path;       /* the file (owned), NULL before the first load */
    char **from_file; /* the names the first load set in the environment, which were not there before (owned) */
    size_t num_from_file;
    char *entries; /* the file's "KEY\0value\0" pairs as last read, each KEY once (owned; values are secrets) */
    size_t entries_len;
} loaded;

static void forget_entries(void)
{
    if (loaded.entries != NULL) {
        explicit_bzero(loaded.entries, loaded.entries_len);
        free(loaded.entries);
    }
    loaded.entries = NULL;
    loaded.entries_len = 0;
}

/* Reads and parses `path` into *entries (owned, "KEY\0value\0" pairs, the last line for a KEY winning, each KEY once).
 * Returns 0 (an empty list for a missing file), or -1 with `err` set. */
static int read_entries(const char *path, char **entries, size_t *entries_len, char *err, size_t errsz)
{
    FILE *fp;
    struct stat st;
    char *buf = NULL, *packed, *w, *entry, *packed_end, *out;
    size_t len;
    unsigned lineno = 0;
    int ret = -1;

    *entries = NULL;
    *entries_len = 0;
    if ((fp = fopen(path, "rb")) == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errsz, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errsz, "%s: not a regular file", path);
        goto Exit;
    }
    /* it holds the Poe key: `cp .env.template .env` leaves it as readable as the template (README, "The two commands") */
    if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        pgw_log_warn(MODULE_NAME, "%s holds secrets but other users may read it (mode %04o): chmod 600 %s", path,
                     (unsigned)(st.st_mode & 07777), path);
    if (st.st_size > MAX_DOTENV_BYTES) {
        snprintf(err, errsz, "%s: larger than %d bytes", path, MAX_DOTENV_BYTES);
        goto Exit;
    }
    /* the file, then room for the parsed "KEY\0value\0" pairs, which are never longer than the lines plus one byte */
    if ((buf = malloc(2 * (size_t)st.st_size + 2)) == NULL) {
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    }
    len = fread(buf, 1, (size_t)st.st_size, fp);
    if (ferror(fp)) {
        snprintf(err, errsz, "%s: cannot read: %s", path, strerror(errno));
        goto Exit;
    }
    packed = w = buf + len;

    const char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 byte order mark, as some editors write */
        p += 3;
    while (p != end) {
        const char *eol = memchr(p, '\n', end - p), *next, *what;
        next = eol != NULL ? eol + 1 : end;
        if (eol == NULL)
            eol = end;
        if (eol != p && eol[-1] == '\r')
            --eol;
        ++lineno;
        if ((what = parse_line(p, eol, &w)) != NULL) {
            snprintf(err, errsz, "%s:%u: %s", path, lineno, what);
            goto Exit;
        }
        p = next;
    }
    packed_end = w;

    if ((out = malloc((size_t)(packed_end - packed) + 1)) == NULL) {
        fprintf(stderr, "poe-gateway: out of memory\n");
        abort();
    }
    *entries = out;
    for (entry = packed; entry != packed_end;) {
        char *value = entry + strlen(entry) + 1, *later = value + strlen(value) + 1, *next = later;
        /* the last line for a KEY wins: skip this one if the KEY comes again */
        while (later != packed_end && strcmp(later, entry) != 0) {
            later += strlen(later) + 1;
            later += strlen(later) + 1;
        }
        if (later == packed_end) {
            memcpy(out, entry, (size_t)(next - entry));
            out += next - entry;
        }
        entry = next;
    }
    *entries_len = (size_t)(out - *entries);
    ret = 0;

Exit:
    if (buf != NULL) {
        explicit_bzero(buf, 2 * (size_t)st.st_size + 2); /* values are often keys */
        free(buf);
    }
    fclose(fp);
    return ret;
}

static const char *find_entry(const char *name)
{
    if (loaded.entries == NULL)
        return NULL;
    for (const char *entry = loaded.entries, *end = loaded.entries + loaded.entries_len; entry != end;) {
        const char *value = entry + strlen(entry) + 1;
        if (strcmp(entry, name) == 0)
            return value;
        entry = value + strlen(value) + 1;
    }
    return NULL;
}

int pgw_dotenv_load(const char *path, char *err, size_t errsz)
{
    char *entries;
    size_t entries_len;
    int ret = 0;

    if (read_entries(path, &entries, &entries_len, err, errsz) != 0)
        return -1;
    forget_entries();
    for (size_t i = 0; i != loaded.num_from_file; ++i)
        free(loaded.from_file[i]);
    free(loaded.from_file);
    loaded.from_file = NULL;
    loaded.num_from_file = 0;
    free(loaded.path);
    if ((loaded.path = strdup(path)) == NULL)
        abort();
    loaded.entries = entries;
    loaded.entries_len = entries_len;

    for (const char *entry = entries, *end = entries != NULL ? entries + entries_len : NULL; entry != end;) {
        const char *value = entry + strlen(entry) + 1;
        if (getenv(entry) == NULL) {
            char **grown = realloc(loaded.from_file, (loaded.num_from_file + 1) * sizeof(*grown));
            if (grown == NULL || setenv(entry, value, 0) != 0 || (grown[loaded.num_from_file] = strdup(entry)) == NULL) {
                fprintf(stderr, "poe-gateway: out of memory\n");
                abort();
            }
            loaded.from_file = grown;
            ++loaded.num_from_file;
            ++ret;
        }
        entry = value + strlen(value) + 1;
    }
    return ret;
}

int pgw_dotenv_reload(char *err, size_t errsz)
{
    char *entries;
    size_t entries_len;

    if (loaded.path == NULL)
        return 0;
    if (read_entries(loaded.path, &entries, &entries_len, err, errsz) != 0)
        return -1;
    forget_entries();
    loaded.entries = entries;
    loaded.entries_len = entries_len;
    return 0;
}

const char *pgw_dotenv_getenv(const char *name)
{
    for (size_t i = 0; i != loaded.num_from_file; ++i)
        if (strcmp(loaded.from_file[i], name) == 0)
            return find_entry(name);
    const char *env = getenv(name);
    return env != NULL ? env : find_entry(name);
}
