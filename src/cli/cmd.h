/* poe-gateway: MIT licence. Subcommands (claude-env, doctor, healthcheck, keys, usage): dispatch, the helpers they share, and the
 * command-line parser they share with the server. */
#ifndef PGW_CMD_H
#define PGW_CMD_H

#include <stddef.h>
#include <stdio.h>
#include "config/config.h"

/* ---- the subcommands (src/main.c chooses one), and what they share (src/cli/cmd.c) ---- */

/** A subcommand's entry point: argv[0] is the subcommand's name. Returns the process exit code. */
typedef int (*pgw_cmd_main_cb)(int argc, char **argv);

int pgw_cmd_claude_env_main(int argc, char **argv);
int pgw_cmd_doctor_main(int argc, char **argv);
int pgw_cmd_healthcheck_main(int argc, char **argv);
int pgw_cmd_keys_main(int argc, char **argv);  /* src/cli/cmd_keys.c */
int pgw_cmd_usage_main(int argc, char **argv); /* src/cli/cmd_usage.c */

/**
 * The configuration a subcommand reads when --config is not given: conf/gateway.yaml when it exists in the working
 * directory (as the server does), else the installed one (PGW_SYSCONFDIR/poe-gateway/gateway.yaml) when that exists,
 * else conf/gateway.yaml (so that the error names the usual place).
 */
const char *pgw_cmd_default_config(void);

/**
 * The environment file a subcommand reads when --env-file is not given: .env in the working directory when it exists,
 * else the installed one (PGW_SYSCONFDIR/poe-gateway/env, the systemd unit's EnvironmentFile) when it is readable,
 * else ".env". Like the server, variables already set win.
 */
const char *pgw_cmd_default_env_file(void);

/** The CA file for upstream TLS, as the server picks it: gateway.ssl_ca_file, else $SSL_CERT_FILE, else NULL. */
const char *pgw_cmd_ca_file(const pgw_config_t *conf);

/** One blocking HTTP exchange's result. `body` is NUL-terminated and owned; free it with pgw_cmd_http_dispose. */
typedef struct st_pgw_cmd_http_t {
    long status; /* 0 when no response head arrived */
    char *body;  /* owned, never NULL after pgw_cmd_http_get */
    size_t len;
    char error[256]; /* libcurl's message when status is 0 */
} pgw_cmd_http_t;

/** What pgw_cmd_http_get should do besides a plain GET. All fields may be zero. */
typedef struct st_pgw_cmd_http_opts_t {
    const char *bearer;      /* sent as Authorization: Bearer; never logged */
    const char *ca_file;     /* CURLOPT_CAINFO */
    int insecure;            /* skip certificate checks (a route's ssl_verify: false, or a probe of ourselves) */
    const char *unix_socket; /* connect to this Unix socket instead of the URL's host */
    const char *header;      /* one extra request header line, "Name: value" */
    double timeout;          /* seconds for the whole exchange; 0 means 10 */
} pgw_cmd_http_opts_t;

/**
 * GETs `url` with libcurl's easy interface (blocking: subcommands are one-shot). Returns 0 when a response arrived,
 * whatever its status, with `res` filled; -1 with res->error set when none did. Either way `res` must be disposed.
 * Bodies above 64 MiB are cut (status stays, body is truncated).
 */
int pgw_cmd_http_get(const char *url, const pgw_cmd_http_opts_t *opts, pgw_cmd_http_t *res);
void pgw_cmd_http_dispose(pgw_cmd_http_t *res);

/**
 * Compares two model names by their runs of digits, read as numbers left to right ("claude-opus-4-8" against
 * "claude-opus-4-5-20251101": 8 > 5). Returns > 0 when `a` looks newer, < 0 when `b` does, 0 when neither.
 */
int pgw_cmd_compare_versions(const char *a, const char *b);

/**
 * Writes the origin (scheme://host[:port]) of `url` into `buf`. Returns 0, or -1 when `url` has no "://" or the origin
 * does not fit.
 */
int pgw_cmd_url_origin(const char *url, char *buf, size_t bufsz);

/* ---- src/cli/cmd_options.c: the command line of the server and of each subcommand ---- */

#define PGW_CMD_EXIT_USAGE 2 /* the exit code for a command line that is wrong */

/** The options a command may take besides its own (--help it always takes). */
enum {
    PGW_CMD_CONFIG = 1,   /* -c, --config FILE */
    PGW_CMD_ENV_FILE = 2, /* --env-file FILE */
};

/** One option of a command's own. A list of them ends with a NULL name. */
typedef struct st_pgw_cmd_option_t {
    const char *name; /* the long name, without the dashes */
    int short_name;   /* the short name ('p'), or 0 */
    const char *arg;  /* the argument's name in --help ("N"), or NULL for an option without one */
    const char *help; /* what it does, for --help; a '\n' starts a continuation line */
} pgw_cmd_option_t;

/** A command's command line, from which both the parser and --help are made. */
typedef struct st_pgw_cmd_line_t {
    const char *name;                /* prefixes error messages ("doctor"; "poe-gateway" for the server) */
    const char *synopsis;            /* --help's opening: the usage lines and what the command does, ending in "\n" */
    const char *epilogue;            /* --help's text after the options, or NULL */
    unsigned shared;                 /* PGW_CMD_CONFIG, PGW_CMD_ENV_FILE: the shared options it takes */
    const char *config_default;      /* the configuration without --config; NULL: pgw_cmd_default_config() */
    const pgw_cmd_option_t *options; /* its own, or NULL */
} pgw_cmd_line_t;

/** The shared options, as given or by default. */
typedef struct st_pgw_cmd_shared_t {
    const char *config;   /* with PGW_CMD_CONFIG: --config, else pgw_cmd_line_t.config_default */
    const char *env_file; /* with PGW_CMD_ENV_FILE: --env-file, else pgw_cmd_default_env_file() */
} pgw_cmd_shared_t;

/**
 * Called for each of the command's own options, in command-line order: `index` in pgw_cmd_line_t.options, `arg` its
 * argument (NULL for an option without one). Returns -1 to go on, or an exit code to stop with (having printed why).
 */
typedef int (*pgw_cmd_option_cb)(void *ctx, size_t index, const char *arg);

/**
 * Parses `argv` (argv[0] names the command; getopt_long's state is the process's): the shared options into `shared`,
 * each of the command's own through `on_option`. --help prints the help to stdout and stops with 0; an unknown option, a
 * missing argument or an operand prints the error and the help to stderr and stops with PGW_CMD_EXIT_USAGE. Returns -1
 * when the command should run, else the exit code it should return at once.
 */
int pgw_cmd_parse(const pgw_cmd_line_t *line, int argc, char **argv, pgw_cmd_shared_t *shared, pgw_cmd_option_cb on_option,
                  void *ctx);

/** Prints the command's help to `fp`: the synopsis, every option it takes, the epilogue. */
void pgw_cmd_print_help(const pgw_cmd_line_t *line, FILE *fp);

#endif
