/* poe-gateway: MIT licence. Unit tests for src/config/dotenv.c. */
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>
#include "../../../../src/config/dotenv.c"
#include "../../test.h"

static char dotenv_path[64];
static char dotenv_err[256];

/* Writes `content` to a temporary file and loads it. */
static int dotenv_from(const char *content)
{
    make_temp_file(dotenv_path, sizeof(dotenv_path), content);
    dotenv_err[0] = '\0';
    int ret = pgw_dotenv_load(dotenv_path, dotenv_err, sizeof(dotenv_err));
    unlink(dotenv_path);
    return ret;
}

/* The error without the "<temporary path>:" prefix, or the whole of it when the prefix is wrong. */
static const char *dotenv_error(void)
{
    size_t plen = strlen(dotenv_path);
    if (strncmp(dotenv_err, dotenv_path, plen) != 0 || dotenv_err[plen] != ':')
        return dotenv_err;
    return dotenv_err + plen + 1;
}

static const char *const test_vars[] = {"PGW_T_PLAIN", "PGW_T_EXPORTED", "PGW_T_SPACED", "PGW_T_HASH",   "PGW_T_EMPTY",
                                        "PGW_T_DQ",    "PGW_T_SQ",       "PGW_T_CRLF",   "PGW_T_DUP",    "PGW_T_PRESET",
                                        "PGW_T_LAST",  "PGW_T_COMMENT",  "PGW_T_DQHASH", "PGW_T_UNSET1", "PGW_T_BOM"};

static void clear_vars(void)
{
    for (size_t i = 0; i != sizeof(test_vars) / sizeof(test_vars[0]); ++i)
        unsetenv(test_vars[i]);
}

static void test_values(void)
{
    clear_vars();
    setenv("PGW_T_PRESET", "from-environment", 1);
    is_int(dotenv_from("# a comment\n"
                       "   # an indented comment\n"
                       "\n"
                       "PGW_T_PLAIN=value\n"
                       "export PGW_T_EXPORTED=yes\n"
                       "PGW_T_SPACED = spaced value   # trailing comment\n"
                       "PGW_T_HASH=a#b\n"
                       "PGW_T_EMPTY=\n"
                       "PGW_T_COMMENT= # only a comment\n"
                       "PGW_T_DQ=\"line1\\nline2 \\\"q\\\" \\\\ \\$x end\"   # comment\n"
                       "PGW_T_DQHASH=\"a # not a comment\"\n"
                       "PGW_T_SQ='single $HOME \\n \"q\"'\n"
                       "PGW_T_CRLF=crlf\r\n"
                       "PGW_T_DUP=first\n"
                       "PGW_T_PRESET=from-file\n"
                       "PGW_T_DUP=second\n"
                       "\t\n"
                       "PGW_T_LAST=no newline at the end"),
           12);
    is_str(dotenv_err, "");
    is_str(getenv("PGW_T_PLAIN"), "value");
    is_str(getenv("PGW_T_EXPORTED"), "yes");
    is_str(getenv("PGW_T_SPACED"), "spaced value");
    is_str(getenv("PGW_T_HASH"), "a#b");
    is_str(getenv("PGW_T_EMPTY"), "");
    is_str(getenv("PGW_T_COMMENT"), "");
    is_str(getenv("PGW_T_DQ"), "line1\nline2 \"q\" \\ \\$x end");
    is_str(getenv("PGW_T_DQHASH"), "a # not a comment");
    is_str(getenv("PGW_T_SQ"), "single $HOME \\n \"q\"");
    is_str(getenv("PGW_T_CRLF"), "crlf");
    is_str(getenv("PGW_T_DUP"), "second");              /* the last line wins, as in compose */
    is_str(getenv("PGW_T_PRESET"), "from-environment"); /* never overridden */
    is_str(getenv("PGW_T_LAST"), "no newline at the end");

    /* loading again changes nothing: everything is set now */
    setenv("PGW_T_PLAIN", "changed", 1);
    is_int(dotenv_from("PGW_T_PLAIN=value\n"), 0);
    is_str(getenv("PGW_T_PLAIN"), "changed");

    /* a byte order mark, and an empty file */
    is_int(dotenv_from("\xef\xbb\xbfPGW_T_BOM=1\n"), 1);
    is_str(getenv("PGW_T_BOM"), "1");
    is_int(dotenv_from(""), 0);
    clear_vars();
}

static void test_malformed(void)
{
    clear_vars();
    /* nothing is set when any line is wrong */
    is_int(dotenv_from("PGW_T_PLAIN=1\nPGW_T_SQ=2\nnot a line\n"), -1);
    is_str(dotenv_error(), "3: expected '=' after the variable name");
    ok(getenv("PGW_T_PLAIN") == NULL);

    is_int(dotenv_from("\n\n1BAD=x\n"), -1);
    is_str(dotenv_error(), "3: expected KEY=value");
    is_int(dotenv_from("=x\n"), -1);
    is_str(dotenv_error(), "1: expected KEY=value");
    is_int(dotenv_from("PGW-T=x\n"), -1);
    is_str(dotenv_error(), "1: expected '=' after the variable name");
    is_int(dotenv_from("PGW_T_DQ=\"never closed\nPGW_T_PLAIN=\"\n"), -1);
    is_str(dotenv_error(), "1: unterminated double-quoted value");
    is_int(dotenv_from("# c\nPGW_T_SQ='never closed\n"), -1);
    is_str(dotenv_error(), "2: unterminated single-quoted value");
    is_int(dotenv_from("PGW_T_DQ=\"a\" b\n"), -1);
    is_str(dotenv_error(), "1: unexpected text after the closing quote");
    is_int(dotenv_from("PGW_T_DQ=\"a\\\"\n"), -1); /* the quote is escaped, so the value never ends */
    is_str(dotenv_error(), "1: unterminated double-quoted value");
    is_int(dotenv_from("export\n"), -1);
    is_str(dotenv_error(), "1: expected '=' after the variable name");
    is_int(dotenv_from("PGW_T_PLAIN=a\0b\n"), 1); /* make_temp_file stops at the NUL: just "PGW_T_PLAIN=a" */
    is_str(getenv("PGW_T_PLAIN"), "a");
    /* the message never quotes the line, which may hold a secret */
    is_int(dotenv_from("sk-secret-value\n"), -1);
    ok(strstr(dotenv_err, "sk-secret") == NULL);
    clear_vars();
}

static void test_files(void)
{
    char err[256] = "untouched";

    is_int(pgw_dotenv_load("/tmp/pgw-unit-no-such-dotenv", err, sizeof(err)), 0);
    is_str(err, "untouched");
    is_int(pgw_dotenv_load("/tmp", err, sizeof(err)), -1);
    is_str(err, "/tmp: not a regular file");

    /* a NUL byte inside a line */
    char path[64] = "/tmp/pgw-unit-XXXXXX";
    int fd = mkstemp(path);
    ok(fd != -1 && write(fd, "PGW_T_PLAIN=a\0b\n", 16) == 16);
    close(fd);
    is_int(pgw_dotenv_load(path, err, sizeof(err)), -1);
    ok(strstr(err, ":1: a NUL byte in the line") != NULL);
    ok(getenv("PGW_T_PLAIN") == NULL);
    unlink(path);
}

static void test_mode(void)
{
    char path[64], log[1024];

    /* cp .env.template .env: as readable as the template; the warning names the file and the fix, never a value */
    make_temp_file(path, sizeof(path), "PGW_T_PLAIN=sk-mode-secret\n");
    ok(chmod(path, 0644) == 0);
    stderr_capture_begin();
    is_int(pgw_dotenv_load(path, dotenv_err, sizeof(dotenv_err)), 1);
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "other users may read it (mode 0644): chmod 600 ") != NULL);
    ok(strstr(log, path) != NULL);
    ok(strstr(log, "sk-mode-secret") == NULL);
    clear_vars();

    ok(chmod(path, 0640) == 0); /* the group counts too */
    stderr_capture_begin();
    pgw_dotenv_load(path, dotenv_err, sizeof(dotenv_err));
    stderr_capture_end(log, sizeof(log));
    ok(strstr(log, "(mode 0640)") != NULL);
    clear_vars();

    /* install -m 600 .env.template .env: nothing to say */
    ok(chmod(path, 0600) == 0);
    stderr_capture_begin();
    is_int(pgw_dotenv_load(path, dotenv_err, sizeof(dotenv_err)), 1);
    stderr_capture_end(log, sizeof(log));
    is_str(log, "");
    clear_vars();
    unlink(path);
}

static void rewrite(const char *path, const char *content)
{
    FILE *fp = fopen(path, "w");
    ok(fp != NULL && fputs(content, fp) >= 0);
    if (fp != NULL)
        fclose(fp);
}

/* SIGHUP's view: the file as last read, for what the file set; the environment for what the process came with */
static void test_reload(void)
{
    char path[64], err[256];

    unsetenv("PGW_T_RL_A");
    unsetenv("PGW_T_RL_B");
    setenv("PGW_T_RL_ENV", "from-environment", 1);
    make_temp_file(path, sizeof(path), "PGW_T_RL_A=one\nPGW_T_RL_ENV=from-file\n");
    is_int(pgw_dotenv_load(path, err, sizeof(err)), 1);
    is_str(getenv("PGW_T_RL_A"), "one");
    is_str(pgw_dotenv_getenv("PGW_T_RL_A"), "one");
    is_str(pgw_dotenv_getenv("PGW_T_RL_ENV"), "from-environment");
    ok(pgw_dotenv_getenv("PGW_T_RL_B") == NULL);

    rewrite(path, "PGW_T_RL_B=two\nPGW_T_RL_ENV=from-file-2\nPGW_T_RL_B=three\n");
    is_int(pgw_dotenv_reload(err, sizeof(err)), 0);
    ok(pgw_dotenv_getenv("PGW_T_RL_A") == NULL); /* gone from the file: gone */
    is_str(getenv("PGW_T_RL_A"), "one");         /* the environment itself is never changed after the load */
    is_str(pgw_dotenv_getenv("PGW_T_RL_B"), "three");
    ok(getenv("PGW_T_RL_B") == NULL);
    is_str(pgw_dotenv_getenv("PGW_T_RL_ENV"), "from-environment");

    rewrite(path, "PGW_T_RL_B=four\nnot a line\n");
    is_int(pgw_dotenv_reload(err, sizeof(err)), -1);
    ok(strstr(err, ":2: expected") != NULL);
    is_str(pgw_dotenv_getenv("PGW_T_RL_B"), "three"); /* a malformed file changes nothing */

    unlink(path);
    is_int(pgw_dotenv_reload(err, sizeof(err)), 0);
    ok(pgw_dotenv_getenv("PGW_T_RL_B") == NULL);
    is_str(pgw_dotenv_getenv("PGW_T_RL_ENV"), "from-environment");
    unsetenv("PGW_T_RL_A");
    unsetenv("PGW_T_RL_ENV");
}

void test_src__dotenv_c(void)
{
    subtest("mode", test_mode);
    subtest("values", test_values);
    subtest("malformed lines", test_malformed);
    subtest("files", test_files);
    subtest("reload", test_reload);
}
