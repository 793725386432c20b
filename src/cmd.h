/* poe-gateway: MIT licence. Subcommands (claude-env, doctor, healthcheck): dispatch and the helpers they share. */
#ifndef PGW_CMD_H
#define PGW_CMD_H

#include <stddef.h>
#include "config.h"

/** A subcommand's entry point: argv[0] is the subcommand's name. Returns the process exit code. */
typedef int (*pgw_cmd_main_cb)(int argc, char **argv);

/**
 * Returns the entry point of the subcommand named `name` ("claude-env", "doctor", "healthcheck"), or NULL when `name` is
 * not one (an option, or a typo the caller reports).
 */
pgw_cmd_main_cb pgw_cmd_find(const char *name);

int pgw_cmd_claude_env_main(int argc, char **argv);
int pgw_cmd_doctor_main(int argc, char **argv);
int pgw_cmd_healthcheck_main(int argc, char **argv);

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
 * Writes the origin (scheme://host[:port]) of `url` into `buf`. Returns 0, or -1 when `url` has no "://" or the origin
 * does not fit.
 */
int pgw_cmd_url_origin(const char *url, char *buf, size_t bufsz);

#endif
