/* poe-gateway: MIT licence. `poe-gateway usage`: who spent what, read from the ledger's file (also while the gateway
 * runs: SQLite's WAL lets a reader in beside the writer), as a table, JSON or CSV. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/cmd.h"
#include "common/clock.h"
#include "common/log.h"
#include "ledger/sqlite.h"

enum { OPT_SINCE, OPT_BY, OPT_JSON, OPT_CSV, OPT_LEDGER };
static const pgw_cmd_option_t options[] = {
    {"since", 's', "WHEN", "from when: 7d (the default), 24h, 30m, or a UTC date 2026-12-01"},
    {"by", 'b', "WHAT", "group by key (the default), model, session or day"},
    {"json", 0, NULL, "print JSON instead of a table"},
    {"csv", 0, NULL, "print CSV instead of a table"},
    {"ledger", 'l', "FILE", "read this ledger file instead of the configuration's"},
    {NULL},
};
static const pgw_cmd_line_t command_line = {
    .name = "usage",
    .synopsis = "Usage: poe-gateway usage [--since 7d] [--by key|model|session|day] [--json|--csv] [--config FILE]\n"
                "\n"
                "Prints requests, tokens and cost from the gateway's ledger (gateway.ledger.path, by default\n"
                "<state_dir>/ledger.sqlite), grouped as asked; it works while the gateway runs. Cost is in USD, and in\n"
                "points at gateway.points_per_usd.\n",
    .shared = PGW_CMD_CONFIG,
    .options = options,
};

enum format { TABLE, JSON, CSV };

struct settings {
    const char *since, *by, *ledger;
    enum format format;
};

static int on_option(void *ctx, size_t index, const char *arg)
{
    struct settings *set = ctx;
    switch (index) {
    case OPT_SINCE:
        set->since = arg;
        break;
    case OPT_BY:
        set->by = arg;
        break;
    case OPT_JSON:
        set->format = JSON;
        break;
    case OPT_CSV:
        set->format = CSV;
        break;
    case OPT_LEDGER:
        set->ledger = arg;
        break;
    }
    return -1;
}

/* "7d", "24h", "30m", or "YYYY-MM-DD" (UTC) into Unix ms; -1 when it is neither. */
static int64_t parse_since(const char *s, int64_t now_ms)
{
    char *end;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    end = strptime(s, "%Y-%m-%d", &tm);
    if (end != NULL && *end == '\0')
        return (int64_t)timegm(&tm) * 1000;
    long long n = strtoll(s, &end, 10);
    if (end == s || n < 0 || end[0] == '\0' || end[1] != '\0')
        return -1;
    switch (end[0]) {
    case 'd':
        return now_ms - n * 86400000;
    case 'h':
        return now_ms - n * 3600000;
    case 'm':
        return now_ms - n * 60000;
    }
    return -1;
}

/* Poe's own figures per day (reconciliation), for --by day */
struct poe_day {
    char day[11];
    long long points;
};

struct printer {
    enum format format;
    const char *by;
    double points_per_usd;
    size_t rows;
    pgw_ledger_row_t total;
    struct poe_day *poe; /* with --by day: what Poe billed, per day (owned) */
    size_t num_poe;
};

static int on_poe_day(void *ctx, const pgw_poe_day_t *d)
{
    struct printer *p = ctx;
    p->poe = realloc(p->poe, (p->num_poe + 1) * sizeof(p->poe[0]));
    snprintf(p->poe[p->num_poe].day, sizeof(p->poe[0].day), "%s", d->day);
    p->poe[p->num_poe++].points = d->points;
    return 0;
}

/* What Poe billed on `day`, or -1 when reconciliation has no figure for it. */
static long long poe_points(const struct printer *p, const char *day)
{
    for (size_t i = 0; i != p->num_poe; ++i)
        if (strcmp(p->poe[i].day, day) == 0)
            return p->poe[i].points;
    return -1;
}

static void json_string(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; ++p) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if (*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

static void csv_field(const char *s)
{
    if (strpbrk(s, ",\"\n\r") == NULL) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s != '\0'; ++s) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_table_line(const char *name, const pgw_ledger_row_t *r, double ppu, const struct printer *p)
{
    printf("%-40.40s %9lld %12lld %10lld %12lld %12lld %11.4f %11.0f", name, r->requests, r->input, r->output, r->cache_read,
           r->cache_write, r->cost_usd, r->cost_usd * ppu);
    long long poe = p != NULL ? poe_points(p, name) : -1;
    if (poe >= 0)
        printf(" %11lld %+7.1f%%", poe, poe > 0 ? (r->cost_usd * ppu - poe) * 100 / poe : 0.0);
    printf("\n");
}

static int on_row(void *ctx, const pgw_ledger_row_t *r)
{
    struct printer *p = ctx;
    switch (p->format) {
    case TABLE:
        if (p->rows == 0)
            printf("%-40s %9s %12s %10s %12s %12s %11s %11s%s\n", p->by, "requests", "input", "output", "cache_read", "cache_write",
                   "cost_usd", "points", p->num_poe != 0 ? "  poe_points    drift" : "");
        print_table_line(r->a, r, p->points_per_usd, p);
        break;
    case JSON:
        printf("%s{", p->rows == 0 ? "" : ",");
        json_string(p->by);
        putchar(':');
        json_string(r->a);
        printf(",\"requests\":%lld,\"input_tokens\":%lld,\"output_tokens\":%lld,\"cache_read_input_tokens\":%lld,"
               "\"cache_creation_input_tokens\":%lld,\"cost_usd\":%.6f,\"cost_points\":%.0f",
               r->requests, r->input, r->output, r->cache_read, r->cache_write, r->cost_usd, r->cost_usd * p->points_per_usd);
        if (strcmp(p->by, "day") == 0) {
            /* reconciliation: what Poe billed that day, and how far the gateway's figure is from it */
            long long poe = poe_points(p, r->a);
            if (poe >= 0)
                printf(",\"poe_points\":%lld,\"drift_percent\":%.2f", poe,
                       poe > 0 ? (r->cost_usd * p->points_per_usd - poe) * 100 / poe : 0.0);
            else
                printf(",\"poe_points\":null,\"drift_percent\":null");
        }
        putchar('}');
        break;
    case CSV:
        if (p->rows == 0)
            printf("%s,requests,input_tokens,output_tokens,cache_read_input_tokens,cache_creation_input_tokens,cost_usd,"
                   "cost_points\n",
                   p->by);
        csv_field(r->a);
        printf(",%lld,%lld,%lld,%lld,%lld,%.6f,%.0f\n", r->requests, r->input, r->output, r->cache_read, r->cache_write,
               r->cost_usd, r->cost_usd * p->points_per_usd);
        break;
    }
    p->total.requests += r->requests;
    p->total.input += r->input;
    p->total.output += r->output;
    p->total.cache_read += r->cache_read;
    p->total.cache_write += r->cache_write;
    p->total.cost_usd += r->cost_usd;
    ++p->rows;
    return 0;
}

int pgw_cmd_usage_main(int argc, char **argv)
{
    pgw_cmd_shared_t shared;
    struct settings set = {"7d", "key", NULL, TABLE};
    char err[1024], path[4096];
    int exit_now;

    if ((exit_now = pgw_cmd_parse(&command_line, argc, argv, &shared, on_option, &set)) >= 0)
        return exit_now;
    static const struct {
        const char *name;
        pgw_ledger_group_t by;
    } groups[] = {
        {"key", PGW_LEDGER_BY_KEY}, {"model", PGW_LEDGER_BY_MODEL}, {"session", PGW_LEDGER_BY_SESSION}, {"day", PGW_LEDGER_BY_DAY}};
    pgw_ledger_query_t q = {0, PGW_LEDGER_BY_KEY, 0};
    size_t g;
    for (g = 0; g != sizeof(groups) / sizeof(groups[0]); ++g)
        if (strcmp(groups[g].name, set.by) == 0)
            break;
    if (g == sizeof(groups) / sizeof(groups[0])) {
        fprintf(stderr, "usage: --by takes key, model, session or day, not '%s'\n", set.by);
        return PGW_CMD_EXIT_USAGE;
    }
    q.by = groups[g].by;
    int64_t now = (int64_t)pgw_now_ms();
    if ((q.since_ms = parse_since(set.since, now)) < 0) {
        fprintf(stderr, "usage: --since takes 7d, 24h, 30m or a date like 2026-12-01, not '%s'\n", set.since);
        return PGW_CMD_EXIT_USAGE;
    }

    pgw_config_t conf;
    double points_per_usd = PGW_DEFAULT_POINTS_PER_USD;
    pgw_log_level = PGW_LOG_ERROR;
    if (pgw_config_load(&conf, shared.config, err, sizeof(err)) == 0) {
        points_per_usd = conf.points_per_usd;
        if (set.ledger == NULL && pgw_sqlite_path(&conf, path, sizeof(path)) != 0) {
            fprintf(stderr, "usage: the ledger has no place: set gateway.ledger.path, gateway.state_dir or HOME\n");
            pgw_config_dispose(&conf);
            return 1;
        }
        pgw_config_dispose(&conf);
    } else if (set.ledger == NULL) {
        fprintf(stderr, "usage: %s (give --ledger FILE to read a ledger without it)\n", err);
        return 1;
    }
    if (set.ledger != NULL)
        snprintf(path, sizeof(path), "%s", set.ledger);

    struct printer p = {set.format, set.by, points_per_usd};
    if (q.by == PGW_LEDGER_BY_DAY)
        pgw_sqlite_poe_days(path, q.since_ms, on_poe_day, &p, err, sizeof(err)); /* none yet is no error */
    if (set.format == JSON) {
        char since[32];
        time_t t = (time_t)(q.since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("{\"since\":\"%s\",\"by\":\"%s\",\"rows\":[", since, set.by);
    }
    if (pgw_sqlite_query_file(path, &q, on_row, &p, err, sizeof(err)) != 0) {
        if (set.format == JSON)
            printf("]}\n");
        fprintf(stderr, "usage: %s\n", err);
        free(p.poe);
        return 1;
    }
    switch (set.format) {
    case TABLE:
        if (p.rows == 0)
            printf("no requests since %s in %s\n", set.since, path);
        else
            print_table_line("total", &p.total, points_per_usd, NULL);
        break;
    case JSON:
        printf("],\"total\":{\"requests\":%lld,\"cost_usd\":%.6f,\"cost_points\":%.0f}}\n", p.total.requests, p.total.cost_usd,
               p.total.cost_usd * points_per_usd);
        break;
    case CSV:
        if (p.rows == 0)
            printf("%s,requests,input_tokens,output_tokens,cache_read_input_tokens,cache_creation_input_tokens,cost_usd,"
                   "cost_points\n",
                   set.by);
        break;
    }
    free(p.poe);
    return 0;
}
