/* poe-gateway: MIT licence. `poe-gateway keys add NAME`: a new random client key, printed once, and the gateway.keys
 * entry that holds only its SHA-256, so that the configuration file keeps no secret. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "cli/cmd.h"
#include "common/log.h"

#define KEY_PREFIX "sk-pgw-"
#define KEY_RANDOM_BYTES 24 /* 192 bits */

enum { OPT_BUDGET_DAILY, OPT_BUDGET_MONTHLY };
static const pgw_cmd_option_t options[] = {
    {"budget-daily", 0, "USD", "the key's daily budget, in USD"},
    {"budget-monthly", 0, "USD", "the key's monthly budget, in USD"},
    {NULL},
};
static const pgw_cmd_line_t command_line = {
    .name = "keys add",
    .synopsis = "Usage: poe-gateway keys add NAME [--budget-daily USD] [--budget-monthly USD] [--config FILE]\n"
                "\n"
                "Makes a new random client key for NAME and prints it once, then the gateway.keys entry to paste into\n"
                "the configuration: it holds the key's sha256: hash, never the key. Reload the gateway after adding it.\n"
                "With --config (or the default configuration), a NAME it already has is refused.\n",
    .shared = PGW_CMD_CONFIG,
    .options = options,
};

struct settings {
    double daily, monthly;
};

static int on_option(void *ctx, size_t index, const char *arg)
{
    struct settings *set = ctx;
    char *end;
    double v = strtod(arg, &end);
    if (*arg == '\0' || *end != '\0' || !isfinite(v) || v <= 0) {
        fprintf(stderr, "keys add: --%s takes a positive amount of USD, not '%s'\n", options[index].name, arg);
        return PGW_CMD_EXIT_USAGE;
    }
    if (index == OPT_BUDGET_DAILY)
        set->daily = v;
    else
        set->monthly = v;
    return -1;
}

/* A name the configuration can hold as a plain YAML scalar and that is not the master key's. */
static int valid_name(const char *name)
{
    if (*name == '\0' || strcmp(name, "master") == 0 || strlen(name) > 100)
        return 0;
    for (const char *p = name; *p != '\0'; ++p)
        if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') || strchr("._@+-", *p) != NULL))
            return 0;
    return 1;
}

int pgw_cmd_keys_main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "add") != 0) {
        FILE *fp = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) ? stdout : stderr;
        pgw_cmd_print_help(&command_line, fp);
        return fp == stdout ? 0 : PGW_CMD_EXIT_USAGE;
    }
    if (argc < 3 || argv[2][0] == '-') {
        if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            pgw_cmd_print_help(&command_line, stdout);
            return 0;
        }
        fprintf(stderr, "keys add: give the key's NAME (a developer's name, as the access log will show it)\n");
        return PGW_CMD_EXIT_USAGE;
    }
    const char *name = argv[2];
    if (!valid_name(name)) {
        fprintf(stderr, "keys add: NAME must be letters, digits and . _ @ + - (at most 100), and not 'master'\n");
        return PGW_CMD_EXIT_USAGE;
    }
    struct settings set = {0, 0};
    pgw_cmd_shared_t shared;
    int exit_now;
    /* argv + 2: the parser takes NAME for the program's name and sees only the options after it */
    if ((exit_now = pgw_cmd_parse(&command_line, argc - 2, argv + 2, &shared, on_option, &set)) >= 0)
        return exit_now;

    pgw_config_t conf;
    char err[1024];
    pgw_log_level = PGW_LOG_ERROR;
    if (pgw_config_load(&conf, shared.config, err, sizeof(err)) == 0) {
        for (size_t i = 0; i != conf.num_keys; ++i) {
            if (strcmp(conf.keys[i].name, name) == 0) {
                fprintf(stderr, "keys add: %s already has a key named %s (line %u)\n", shared.config, name, conf.keys[i].line);
                pgw_config_dispose(&conf);
                return 1;
            }
        }
        pgw_config_dispose(&conf);
    }

    static const char hex[] = "0123456789abcdef";
    unsigned char rnd[KEY_RANDOM_BYTES], md[SHA256_DIGEST_LENGTH];
    char key[sizeof(KEY_PREFIX) + KEY_RANDOM_BYTES * 2], hash[SHA256_DIGEST_LENGTH * 2 + 1];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        fprintf(stderr, "keys add: no random bytes from OpenSSL\n");
        return 1;
    }
    char *p = key + sprintf(key, "%s", KEY_PREFIX);
    for (size_t i = 0; i != sizeof(rnd); ++i) {
        *p++ = hex[rnd[i] >> 4];
        *p++ = hex[rnd[i] & 15];
    }
    *p = '\0';
    SHA256((const unsigned char *)key, strlen(key), md);
    for (size_t i = 0; i != sizeof(md); ++i)
        sprintf(hash + i * 2, "%02x", md[i]);

    printf("# the key for %s, shown this once (the gateway keeps only its hash):\n%s\n", name, key);
    printf("# add to gateway.keys in %s, then reload the gateway:\n", shared.config);
    printf("    - name: %s\n      key: sha256:%s\n", name, hash);
    if (set.daily > 0 || set.monthly > 0) {
        printf("      budget: {");
        if (set.daily > 0)
            printf("daily: %.2f%s", set.daily, set.monthly > 0 ? ", " : "");
        if (set.monthly > 0)
            printf("monthly: %.2f", set.monthly);
        printf("}\n");
    }
    explicit_bzero(key, sizeof(key));
    return 0;
}
