/* poe-gateway: MIT licence. `poe-gateway healthcheck`: asks a running gateway's liveness probe, for Docker's HEALTHCHECK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "cli/cmd.h"
#include "common/log.h"
#include "config/masterkey.h"

/* The slim runtime image has no curl(1); the binary already links libcurl, so it probes itself. */
#define HEALTH_PATH "/health/liveliness"

enum { OPT_URL, OPT_PORT }; /* indexes in options[] */
static const pgw_cmd_option_t options[] = {
    {"url", 'u', "URL", "probe this URL instead"},
    {"port", 'p', "N", "probe this port instead of the configuration's"},
    {NULL},
};
static const pgw_cmd_line_t command_line = {
    .name = "healthcheck",
    .synopsis = "Usage: poe-gateway healthcheck [--url URL] [--config FILE] [--env-file FILE] [--port N]\n"
                "\n"
                "Exits 0 when the gateway on this machine answers GET " HEALTH_PATH " with 200, else 1.\n"
                "The URL comes from the configuration's port and TLS setting (on 127.0.0.1) unless --url is given.\n",
    .shared = PGW_CMD_CONFIG | PGW_CMD_ENV_FILE,
    .options = options,
};

struct settings {
    const char *url;
    const char *port;
};

static int on_option(void *ctx, size_t index, const char *arg)
{
    struct settings *set = ctx;
    if (index == OPT_URL)
        set->url = arg;
    else
        set->port = arg; /* checked only when it is used */
    return -1;
}

/* Where to reach a gateway listening on `host` from this machine: itself, unless it is a wildcard or loopback address. */
static void probe_host(const char *host, char *buf, size_t bufsz)
{
    if (host == NULL || host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 || pgw_host_is_loopback(host))
        snprintf(buf, bufsz, "127.0.0.1");
    else if (strchr(host, ':') != NULL)
        snprintf(buf, bufsz, "[%s]", host);
    else
        snprintf(buf, bufsz, "%s", host);
}

int pgw_cmd_healthcheck_main(int argc, char **argv)
{
    pgw_cmd_shared_t shared;
    struct settings set = {NULL};
    char err[1024], host[300], built[512];
    unsigned port = PGW_DEFAULT_PORT;
    int tls = 0, ret = 1, exit_now;

    if ((exit_now = pgw_cmd_parse(&command_line, argc, argv, &shared, on_option, &set)) >= 0)
        return exit_now;
    const char *url = set.url, *port_arg = set.port;

    if (url == NULL) {
        pgw_config_t conf;
        pgw_log_level = PGW_LOG_ERROR; /* a probe prints one line, not the config's warnings */
        probe_host(NULL, host, sizeof(host));
        /* the configuration may take its values from the env file, as the server's does */
        if (pgw_dotenv_load(shared.env_file, err, sizeof(err)) < 0)
            fprintf(stderr, "healthcheck: %s\n", err);
        if (pgw_config_load(&conf, shared.config, err, sizeof(err)) == 0) {
            port = conf.port;
            tls = conf.tls_cert_file != NULL;
            probe_host(conf.host, host, sizeof(host));
            pgw_config_dispose(&conf);
        } else {
            fprintf(stderr, "healthcheck: %s (probing the default port)\n", err);
        }
        if (port_arg != NULL) {
            char *end;
            unsigned long v = strtoul(port_arg, &end, 10);
            if (*port_arg == '\0' || *end != '\0' || v == 0 || v > 65535) {
                fprintf(stderr, "healthcheck: --port: expected 1 to 65535, got %s\n", port_arg);
                return 2;
            }
            port = (unsigned)v;
        }
        snprintf(built, sizeof(built), "%s://%s:%u%s", tls ? "https" : "http", host, port, HEALTH_PATH);
        url = built;
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    pgw_cmd_http_t res;
    /* TLS is not verified: this asks our own listener, whose certificate may name a host other than 127.0.0.1. */
    pgw_cmd_http_opts_t opts = {.insecure = 1, .timeout = 5};
    if (pgw_cmd_http_get(url, &opts, &res) != 0) {
        printf("unhealthy: %s: %s\n", url, res.error);
    } else if (res.status != 200) {
        printf("unhealthy: %s answered %ld\n", url, res.status);
    } else {
        printf("healthy: %s\n", url);
        ret = 0;
    }
    pgw_cmd_http_dispose(&res);
    curl_global_cleanup();
    return ret;
}
