/* poe-gateway: MIT licence. Unit tests for src/cli/cmd_options.c: the parser and the help made from one declaration. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../../../src/cli/cmd_options.c"
#include "../../test.h"

enum { OPT_FLAG, OPT_NUMBER, OPT_NAME };
static const pgw_cmd_option_t options[] = {
    {"flag", 0, NULL, "a flag"},
    {"number", 'n', "N", "a number\nover two lines"},
    {"name", 0, "NAME", "a name"},
    {NULL},
};
static const pgw_cmd_line_t with_env = {
    .name = "probe",
    .synopsis = "Usage: poe-gateway probe [options]\n",
    .epilogue = "The end.\n",
    .shared = PGW_CMD_CONFIG | PGW_CMD_ENV_FILE,
    .config_default = "conf/probe.yaml",
    .options = options,
};
static const pgw_cmd_line_t bare = {.name = "bare", .synopsis = "Usage: bare\n"};

/* what the callback saw, in order */
static char seen[256];
static int stop_at = -1;

static int on_option(void *ctx, size_t index, const char *arg)
{
    size_t len = strlen(seen);
    snprintf(seen + len, sizeof(seen) - len, "%s%s=%s", len != 0 ? " " : "", options[index].name, arg != NULL ? arg : "-");
    return (int)index == stop_at ? 7 : -1;
}

/* Parses a NULL-terminated argument list; argv[0] is the command's name. */
static int parse(const pgw_cmd_line_t *line, pgw_cmd_shared_t *shared, char **args)
{
    int argc = 0;
    while (args[argc] != NULL)
        ++argc;
    seen[0] = '\0';
    optind = 0; /* getopt_long's full reset, for the next argument list */
    return pgw_cmd_parse(line, argc, args, shared, on_option, NULL);
}

static void test_parse(void)
{
    pgw_cmd_shared_t shared;

    /* the command's own options reach the callback in order, the shared ones are stored */
    char *all[] = {"probe", "--number", "4", "--flag", "-c", "x.yaml", "--env-file", "x.env", "-n5", "--name=bob", NULL};
    is_int(parse(&with_env, &shared, all), -1);
    is_str(seen, "number=4 flag=- number=5 name=bob");
    is_str(shared.config, "x.yaml");
    is_str(shared.env_file, "x.env");
    char *long_config[] = {"probe", "--config", "y.yaml", NULL};
    is_int(parse(&with_env, &shared, long_config), -1);
    is_str(shared.config, "y.yaml");

    /* without them, the command's defaults */
    char *none[] = {"probe", NULL};
    is_int(parse(&with_env, &shared, none), -1);
    is_str(seen, "");
    is_str(shared.config, "conf/probe.yaml");
    is_str(shared.env_file, pgw_cmd_default_env_file());
    char *bare_none[] = {"bare", NULL};
    is_int(parse(&bare, &shared, bare_none), -1);
    ok(shared.config == NULL && shared.env_file == NULL);

    /* the callback can stop the command with an exit code */
    stop_at = OPT_FLAG;
    char *stop[] = {"probe", "--name", "a", "--flag", "--name", "b", NULL};
    is_int(parse(&with_env, &shared, stop), 7);
    is_str(seen, "name=a flag=-");
    stop_at = -1;
}

static void test_mistakes(void)
{
    pgw_cmd_shared_t shared;
    char out[4096];

    /* an operand: named, then the help, on stderr; exit 2 */
    char *operand[] = {"probe", "--flag", "extra", NULL};
    stderr_capture_begin();
    int ret = parse(&with_env, &shared, operand);
    stderr_capture_end(out, sizeof(out));
    is_int(ret, PGW_CMD_EXIT_USAGE);
    ok(strncmp(out, "probe: unexpected argument: extra\nUsage: poe-gateway probe [options]\n", 69) == 0);

    /* an unknown option, a missing argument, and a shared option the command does not take */
    char *unknown[] = {"probe", "--nope", NULL}, *missing[] = {"probe", "--number", NULL}, *not_taken[] = {"bare", "--config", "x", NULL},
         *not_taken_short[] = {"bare", "-c", "x", NULL};
    char **mistakes[] = {unknown, missing, not_taken, not_taken_short};
    for (size_t i = 0; i != sizeof(mistakes) / sizeof(mistakes[0]); ++i) {
        stderr_capture_begin();
        ret = parse(mistakes[i][0][0] == 'b' ? &bare : &with_env, &shared, mistakes[i]);
        stderr_capture_end(out, sizeof(out));
        is_int(ret, PGW_CMD_EXIT_USAGE);
        ok(strstr(out, "Usage: ") != NULL);
    }
}

static void test_help(void)
{
    char *text;
    size_t len;
    FILE *fp = open_memstream(&text, &len);

    pgw_cmd_print_help(&with_env, fp);
    fclose(fp);
    /* every option the parser takes, aligned, continuation lines under the description */
    is_str(text, "Usage: poe-gateway probe [options]\n"
                 "\n"
                 "Options:\n"
                 "      --flag             a flag\n"
                 "  -n, --number N         a number\n"
                 "                         over two lines\n"
                 "      --name NAME        a name\n"
                 "  -c, --config FILE      the configuration (default: conf/probe.yaml)\n"
                 "      --env-file FILE    read variables from FILE (default: .env, else the installed env file)\n"
                 "  -h, --help             print this help and exit\n"
                 "\n"
                 "The end.\n");
    free(text);

    fp = open_memstream(&text, &len);
    pgw_cmd_print_help(&bare, fp);
    fclose(fp);
    is_str(text, "Usage: bare\n"
                 "\n"
                 "Options:\n"
                 "  -h, --help             print this help and exit\n");
    free(text);
}

void test_src__cmd_options_c(void)
{
    subtest("parse", test_parse);
    subtest("mistakes", test_mistakes);
    subtest("help", test_help);
}
