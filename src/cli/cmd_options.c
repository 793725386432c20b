/* poe-gateway: MIT licence. The command line of the server and of each subcommand: the options they share, --help, and
 * what a mistake prints.
 *
 * A command declares only its own options (pgw_cmd_option_t) and which shared ones it takes; pgw_cmd_parse builds
 * getopt_long's tables from that, stores the shared options, hands each of the command's own to the command's callback,
 * and prints the help (--help to stdout; an unknown option, a missing argument or a stray operand to stderr, after the
 * error) from the same declarations, so that the help cannot miss an option the parser takes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cmd.h"

#define MAX_OPTIONS 32
#define HELP_COLUMN 25 /* where an option's description starts */
#define OPT_OWN 256    /* getopt_long's value for the command's own option i without a short name: OPT_OWN + i */
#define OPT_ENV_FILE (OPT_OWN + MAX_OPTIONS)

/* One line of --help: "  -c, --config FILE      what it does", continuation lines aligned under the description. */
static void print_option(FILE *fp, int short_name, const char *name, const char *arg, const char *help)
{
    char head[128];
    int n = snprintf(head, sizeof(head), "  %c%c%c --%s%s%s", short_name != 0 ? '-' : ' ', short_name != 0 ? short_name : ' ',
                     short_name != 0 ? ',' : ' ', name, arg != NULL ? " " : "", arg != NULL ? arg : "");
    fprintf(fp, "%s%*s", head, n < HELP_COLUMN ? HELP_COLUMN - n : 1, "");
    for (const char *p = help; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        fprintf(fp, "%.*s\n", (int)len, p);
        p += len;
        if (*p == '\n' && *++p != '\0')
            fprintf(fp, "%*s", HELP_COLUMN, "");
    }
}

void pgw_cmd_print_help(const pgw_cmd_line_t *line, FILE *fp)
{
    char config_help[256];

    fprintf(fp, "%s\nOptions:\n", line->synopsis);
    for (const pgw_cmd_option_t *o = line->options; o != NULL && o->name != NULL; ++o)
        print_option(fp, o->short_name, o->name, o->arg, o->help);
    if ((line->shared & PGW_CMD_CONFIG) != 0) {
        snprintf(config_help, sizeof(config_help), "the configuration (default: %s)",
                 line->config_default != NULL ? line->config_default : PGW_DEFAULT_CONFIG_PATH ", else the installed one");
        print_option(fp, 'c', "config", "FILE", config_help);
    }
    if ((line->shared & PGW_CMD_ENV_FILE) != 0)
        print_option(fp, 0, "env-file", "FILE", "read variables from FILE (default: .env, else the installed env file)");
    print_option(fp, 'h', "help", NULL, "print this help and exit");
    if (line->epilogue != NULL)
        fprintf(fp, "\n%s", line->epilogue);
}

/* A mistake on the command line: what it was (unless getopt said it already), then the help, on stderr. */
static int misused(const pgw_cmd_line_t *line, const char *what, const char *arg)
{
    if (what != NULL)
        fprintf(stderr, "%s: %s: %s\n", line->name, what, arg);
    pgw_cmd_print_help(line, stderr);
    return PGW_CMD_EXIT_USAGE;
}

int pgw_cmd_parse(const pgw_cmd_line_t *line, int argc, char **argv, pgw_cmd_shared_t *shared, pgw_cmd_option_cb on_option,
                  void *ctx)
{
    struct option longopts[MAX_OPTIONS + 4];
    char shortopts[MAX_OPTIONS * 2 + 8];
    size_t num = 0, s = 0;
    int ch;

    memset(shared, 0, sizeof(*shared));
    for (const pgw_cmd_option_t *o = line->options; o != NULL && o->name != NULL; ++o, ++num) {
        if (num == MAX_OPTIONS)
            abort(); /* a command with this many options needs MAX_OPTIONS raised */
        int val = o->short_name != 0 ? o->short_name : OPT_OWN + (int)num;
        longopts[num] = (struct option){o->name, o->arg != NULL ? required_argument : no_argument, NULL, val};
        if (o->short_name != 0) {
            shortopts[s++] = (char)o->short_name;
            if (o->arg != NULL)
                shortopts[s++] = ':';
        }
    }
    size_t n = num;
    if ((line->shared & PGW_CMD_CONFIG) != 0) {
        longopts[n++] = (struct option){"config", required_argument, NULL, 'c'};
        shortopts[s++] = 'c';
        shortopts[s++] = ':';
    }
    if ((line->shared & PGW_CMD_ENV_FILE) != 0)
        longopts[n++] = (struct option){"env-file", required_argument, NULL, OPT_ENV_FILE};
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n] = (struct option){NULL, 0, NULL, 0};
    shortopts[s++] = 'h';
    shortopts[s] = '\0';

    while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        size_t i;
        if (ch == 'h') {
            pgw_cmd_print_help(line, stdout);
            return 0;
        } else if (ch == 'c' && (line->shared & PGW_CMD_CONFIG) != 0) {
            shared->config = optarg;
            continue;
        } else if (ch == OPT_ENV_FILE) {
            shared->env_file = optarg;
            continue;
        } else if (ch >= OPT_OWN && ch < OPT_OWN + (int)num) {
            i = (size_t)(ch - OPT_OWN);
        } else {
            for (i = 0; i != num && line->options[i].short_name != ch; ++i)
                ;
            if (i == num) /* '?' or ':': getopt has said what was wrong */
                return misused(line, NULL, NULL);
        }
        int ret = on_option(ctx, i, optarg);
        if (ret >= 0)
            return ret;
    }
    if (optind != argc)
        return misused(line, "unexpected argument", argv[optind]);
    if ((line->shared & PGW_CMD_CONFIG) != 0 && shared->config == NULL)
        shared->config = line->config_default != NULL ? line->config_default : pgw_cmd_default_config();
    if ((line->shared & PGW_CMD_ENV_FILE) != 0 && shared->env_file == NULL)
        shared->env_file = pgw_cmd_default_env_file();
    return -1;
}
