/* poe-gateway: MIT licence. Command line, configuration, and the start of the server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"
#include "config/config.h"
#include "common/log.h"
#include "config/masterkey.h"
#include "config/route_match.h"
#include "config/seed.h"
#include "serve/server.h"
#include "handlers/handlers.h"

#define MODULE_NAME "main"
#define EXIT_CONFIG 2

/* indexes in options[]; the last two are LiteLLM's names, so that a LiteLLM compose `command:` runs (README, "Migrating
 * from LiteLLM") */
enum { OPT_HOST, OPT_PORT, OPT_THREADS, OPT_LOG_LEVEL, OPT_CHECK_CONFIG, OPT_VERSION, OPT_NUM_WORKERS, OPT_DETAILED_DEBUG };
static const pgw_cmd_option_t options[] = {
    {"host", 0, "ADDR", "address to listen on (default: gateway.host, else " PGW_DEFAULT_HOST ")"},
    {"port", 'p', "N", "port to listen on (default: gateway.port, else $LITELLM_PORT, else 4000;\n0 picks a free one)"},
    {"threads", 't', "N", "worker threads (default: gateway.threads, else one per core)"},
    {"log-level", 0, "L", "error, warn, info or debug (default: gateway.log_level, else info)"},
    {"check-config", 0, NULL, "validate the configuration, print the resolved routes and fallbacks and exit\n(0 when valid, 2 when not)"},
    {"version", 'v', NULL, "print the version and exit"},
    {"num_workers", 0, "N", "LiteLLM's name for --threads"},
    {"detailed_debug", 0, NULL, "LiteLLM's flag: the same as --log-level debug"},
    {NULL},
};
static const pgw_cmd_line_t command_line = {
    .name = "poe-gateway",
    .synopsis = "Usage: poe-gateway [options]\n"
                "       poe-gateway claude-env | doctor | healthcheck | usage | keys add NAME [options]   (each takes --help)\n"
                "\n"
                "Serves the Anthropic Messages API to Claude Code and forwards it to Poe.com.\n",
    .epilogue = "The env file is read first (variables already set win) and again on SIGHUP.\n",
    .shared = PGW_CMD_CONFIG | PGW_CMD_ENV_FILE,
    .config_default = PGW_DEFAULT_CONFIG_PATH,
    .options = options,
};

/* What the command line says; the configuration's own settings apply where it says nothing. */
struct settings {
    const char *host, *log_level;
    unsigned port, threads;
    int port_set, threads_set, check_only;
};

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static void print_routes(const pgw_config_t *conf)
{
    char masked[64];
    printf("config: %s\n", conf->path);
    printf("listen: %s:%u, threads: ", conf->host, conf->port);
    if (conf->threads != 0)
        printf("%u\n", conf->threads);
    else
        printf("one per core\n");
    if (conf->master_key != NULL)
        printf("master key: %s%s%s\n", pgw_log_mask_key(conf->master_key, masked, sizeof(masked)),
               conf->master_key_env != NULL ? " from " : "", conf->master_key_env != NULL ? conf->master_key_env : "");
    else if (conf->master_key_env != NULL)
        printf("master key: (unset: %s)\n", conf->master_key_env);
    else
        printf("master key: none configured (generated on first start in the state directory)\n");
    printf("routes (%zu):\n", conf->num_routes);
    for (size_t i = 0; i != conf->num_routes; ++i) {
        const pgw_route_t *r = conf->routes + i;
        printf("  %-32s %s/%s via %s, key %s%s%s\n", r->model_name, r->kind == PGW_ROUTE_ANTHROPIC ? "anthropic" : "openai",
               r->upstream_model, r->api_base, pgw_log_mask_key(r->api_key, masked, sizeof(masked)),
               r->api_key_env != NULL ? " from " : "", r->api_key_env != NULL ? r->api_key_env : "");
    }
    /* valid, but each cached turn of Claude Code would cost about ten times as much (docs/config.md#claude-on-openai-routes) */
    for (size_t i = 0; i != conf->num_routes; ++i) {
        char hint[300];
        const pgw_route_t *r = conf->routes + i;
        if (pgw_route_caching_hint(r, hint, sizeof(hint)))
            printf("note: route %s (line %u) sends Claude through openai/ (chat/completions), without prompt caching; for\n"
                   "      caching (a cached turn costs about a tenth), write its model as:\n"
                   "        model: %s\n",
                   r->model_name, r->line, hint);
    }
    if (conf->num_fallbacks == 0)
        return;
    printf("fallbacks (%zu), a route resting %g s after more than %d failures in a minute:\n", conf->num_fallbacks,
           conf->cooldown_time, conf->allowed_fails);
    for (size_t i = 0; i != conf->num_fallbacks; ++i) {
        const pgw_fallbacks_t *fb = conf->fallbacks + i;
        printf("  %-32s %s->", fb->from, fb->context_window ? "context window " : "");
        for (size_t k = 0; k != fb->num_to; ++k) {
            const pgw_fallback_target_t *t = fb->to + k;
            const char *route = conf->routes[t->route].model_name;
            printf("%s %s%s%s%s", k != 0 ? "," : "", t->name, strcmp(route, t->name) != 0 ? " (route " : "",
                   strcmp(route, t->name) != 0 ? route : "", strcmp(route, t->name) != 0 ? ")" : "");
        }
        printf("\n");
    }
}

static int on_option(void *ctx, size_t index, const char *arg)
{
    struct settings *set = ctx;
    switch (index) {
    case OPT_HOST:
        set->host = arg;
        break;
    case OPT_PORT:
        if (parse_uint(arg, 65535, &set->port) != 0) {
            fprintf(stderr, "poe-gateway: --port: expected 0 to 65535, got %s\n", arg);
            return EXIT_CONFIG;
        }
        set->port_set = 1;
        break;
    case OPT_THREADS:
    case OPT_NUM_WORKERS:
        if (parse_uint(arg, 256, &set->threads) != 0 || set->threads == 0) {
            fprintf(stderr, "poe-gateway: --%s: expected 1 to 256, got %s\n", options[index].name, arg);
            return EXIT_CONFIG;
        }
        set->threads_set = 1;
        break;
    case OPT_LOG_LEVEL:
        set->log_level = arg;
        break;
    case OPT_DETAILED_DEBUG:
        set->log_level = "debug";
        break;
    case OPT_CHECK_CONFIG:
        set->check_only = 1;
        break;
    case OPT_VERSION:
        printf("poe-gateway %s\n", PGW_VERSION);
        return 0;
    }
    return -1;
}

/* The subcommands, by name: `poe-gateway NAME ...` runs one instead of the server. */
static const struct {
    const char *name;
    pgw_cmd_main_cb main;
} subcommands[] = {
    {"claude-env", pgw_cmd_claude_env_main},
    {"doctor", pgw_cmd_doctor_main},
    {"healthcheck", pgw_cmd_healthcheck_main},
    {"keys", pgw_cmd_keys_main},
    {"usage", pgw_cmd_usage_main},
};

static pgw_cmd_main_cb find_subcommand(const char *name)
{
    for (size_t i = 0; i != sizeof(subcommands) / sizeof(subcommands[0]); ++i)
        if (strcmp(subcommands[i].name, name) == 0)
            return subcommands[i].main;
    return NULL;
}

int main(int argc, char **argv)
{
    struct settings set = {NULL};
    pgw_cmd_shared_t shared;
    char err[1024];
    pgw_cmd_main_cb subcommand;
    int exit_now;

    if (argc > 1 && (subcommand = find_subcommand(argv[1])) != NULL)
        return subcommand(argc - 1, argv + 1);
    if ((exit_now = pgw_cmd_parse(&command_line, argc, argv, &shared, on_option, &set)) >= 0)
        return exit_now;
    const char *config_path = shared.config;

    if (set.log_level != NULL && pgw_log_parse_level(set.log_level, &pgw_log_level) != 0) {
        fprintf(stderr, "poe-gateway: --log-level: expected error, warn, info or debug, got %s\n", set.log_level);
        return EXIT_CONFIG;
    }

    if (pgw_dotenv_load(shared.env_file, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    int seeded = pgw_config_seed(config_path, err, sizeof(err)); /* conf/gateway.yaml from its template, on first start */
    if (seeded < 0) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    if (seeded)
        pgw_log_info(MODULE_NAME, "created %s from %s" PGW_TEMPLATE_SUFFIX ": it is yours to edit", config_path, config_path);
    static pgw_config_t conf;
    if (pgw_config_load(&conf, config_path, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return EXIT_CONFIG;
    }
    if (set.log_level == NULL && conf.log_level != NULL && pgw_log_parse_level(conf.log_level, &pgw_log_level) != 0) {
        fprintf(stderr, "%s: gateway.log_level: expected error, warn, info or debug, got %s\n", config_path, conf.log_level);
        goto ConfigError;
    }
    if (set.host != NULL) {
        free(conf.host);
        conf.host = strdup(set.host);
    }
    if (set.port_set)
        conf.port = set.port;
    if (set.threads_set)
        conf.threads = set.threads;

    if (set.check_only) {
        print_routes(&conf);
        int bad = 0;
        for (size_t i = 0; i != conf.num_missing_env; ++i) {
            fprintf(stderr, "%s: environment variable %s is referenced but not set\n", config_path, conf.missing_env[i]);
            bad = 1;
        }
        /* a typo in the gateway's own settings, or no route at all, loads but cannot be what was meant */
        for (size_t i = 0; i != conf.num_unknown_keys; ++i) {
            fprintf(stderr, "%s\n", conf.unknown_keys[i]);
            bad = 1;
        }
        if (conf.num_routes == 0) {
            fprintf(stderr, "%s: no routes: model_list is missing or empty, so every request would answer 404\n", config_path);
            bad = 1;
        }
        if (conf.master_key == NULL && !pgw_host_is_loopback(conf.host)) {
            fprintf(stderr, "%s: no master key is configured and gateway.host %s is not loopback\n", config_path, conf.host);
            bad = 1;
        }
        pgw_config_dispose(&conf);
        return bad ? EXIT_CONFIG : 0;
    }

    pgw_log_debug(MODULE_NAME, "debug logging is on; %s: %zu routes", config_path, conf.num_routes);
    pgw_config_warn_missing_env(&conf);
    if (pgw_masterkey_ensure(&conf, err, sizeof(err)) != 0) {
        pgw_log_error(MODULE_NAME, "%s", err);
        goto ConfigError;
    }

    static pgw_server_t server; /* static: it stays reachable until the process exits */
    if (pgw_server_init(&server, &conf) != 0) {
        pgw_config_dispose(&conf);
        return 1;
    }
    pgw_handlers_register(server.hostconf);
    server.cli.host = set.host;
    server.cli.port_set = set.port_set;
    server.cli.port = set.port;
    server.cli.threads_set = set.threads_set;
    server.cli.threads = set.threads;
    int ret = pgw_server_run(&server);
    /* Workers may still hold pointers into the configuration of requests cut at the end of the grace period, so the
     * configuration is left to the process exit. */
    return ret;

ConfigError:
    pgw_config_dispose(&conf);
    return EXIT_CONFIG;
}
