/* poe-gateway: MIT licence. The /usage page (docs/ledger.md#the-page).
 *
 * Everything is drawn here, on the server: the page has no script, no external stylesheet, font or image, so it works
 * offline on the tailnet and leaks nothing to third parties. The budgets are read on the loop's thread when the request
 * comes (the configuration belongs to the request's generation, which the job may outlive); everything else is read
 * from the ledger by the job on the thread pool (handlers/usage.c), which renders the whole page into one buffer.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/clock.h"
#include "common/errors.h"
#include "common/json.h"
#include "ledger/budget.h"
#include "handlers/usage_job.h"
#include "handlers/usage_page.h"

#define DAYS 14           /* the chart's width in days */
#define MAX_DEVELOPERS 12 /* the chart's colours; more developers share the last one ("others") */
#define TOP_SESSIONS 10

static const char *const palette[MAX_DEVELOPERS] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948",
                                                    "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295"};

struct budget_line {
    char who[192];
    int monthly, in_points;
    double limit, spent;
};

struct page_arg {
    double points_per_usd;
    size_t num_budgets;
    struct budget_line budgets[]; /* read on the loop's thread */
};

/* ---- writing ---- */

static void __attribute__((format(printf, 2, 3))) out_printf(h2o_buffer_t **out, const char *fmt, ...)
{
    char tmp[1024];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, args);
    va_end(args);
    if (n > 0)
        pgw_buf_append(out, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* text into HTML (also inside attribute values) */
static void out_text(h2o_buffer_t **out, const char *s)
{
    for (; *s != '\0'; ++s) {
        switch (*s) {
        case '<':
            pgw_buf_append_lit(out, "&lt;");
            break;
        case '>':
            pgw_buf_append_lit(out, "&gt;");
            break;
        case '&':
            pgw_buf_append_lit(out, "&amp;");
            break;
        case '"':
            pgw_buf_append_lit(out, "&quot;");
            break;
        case '\'':
            pgw_buf_append_lit(out, "&#39;");
            break;
        default:
            pgw_buf_append(out, s, 1);
        }
    }
}

/* ---- the stacked bars: spend per developer per day ---- */

struct chart {
    char *names[MAX_DEVELOPERS]; /* owned */
    size_t num_names;
    char days[DAYS][11];
    double usd[DAYS][MAX_DEVELOPERS];
    int64_t first_day; /* days since the epoch of days[0] */
};

static int on_key_day(void *ctx, const pgw_ledger_row_t *row)
{
    struct chart *c = ctx;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (row->b == NULL || strptime(row->b, "%Y-%m-%d", &tm) == NULL)
        return 0;
    int64_t d = (int64_t)timegm(&tm) / 86400 - c->first_day;
    if (d < 0 || d >= DAYS)
        return 0;
    size_t k;
    for (k = 0; k != c->num_names; ++k)
        if (strcmp(c->names[k], row->a) == 0)
            break;
    if (k == c->num_names) {
        if (c->num_names == MAX_DEVELOPERS)
            k = MAX_DEVELOPERS - 1; /* the last colour is everyone past the first eleven */
        else
            c->names[c->num_names++] = strdup(row->a);
    }
    c->usd[d][k] += row->cost_usd;
    return 0;
}

static void draw_chart(h2o_buffer_t **out, struct chart *c)
{
    const int width = 900, height = 260, left = 60, bottom = 30, top = 10;
    double max = 0;
    for (int d = 0; d != DAYS; ++d) {
        double sum = 0;
        for (size_t k = 0; k != c->num_names; ++k)
            sum += c->usd[d][k];
        if (sum > max)
            max = sum;
    }
    if (max <= 0)
        max = 1;
    /* a round top for the axis */
    double step = pow(10, floor(log10(max))), axis = ceil(max / step) * step;
    double plot_h = height - bottom - top, bar_w = (double)(width - left) / DAYS;

    out_printf(out,
               "<svg id=\"daily\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" role=\"img\" "
               "aria-label=\"spend per developer per day\">",
               width, height);
    for (int i = 0; i <= 4; ++i) {
        double y = top + plot_h - plot_h * i / 4;
        out_printf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, width, y, y);
        out_printf(out, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">$%.2f</text>", left - 4, y + 4,
                   axis * i / 4);
    }
    for (int d = 0; d != DAYS; ++d) {
        double x = left + d * bar_w + 3, y = top + plot_h;
        for (size_t k = 0; k != c->num_names; ++k) {
            double h = c->usd[d][k] / axis * plot_h;
            if (c->usd[d][k] <= 0)
                continue;
            if (h < 1)
                h = 1;
            y -= h;
            out_printf(out, "<rect class=\"bar\" data-key=\"");
            out_text(out, c->names[k]);
            out_printf(out, "\" data-day=\"%s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                       c->days[d], x, y, bar_w - 6, h, palette[k]);
            out_text(out, c->names[k]);
            out_printf(out, " %s: $%.4f</title></rect>", c->days[d], c->usd[d][k]);
        }
        if (d % 2 == 0)
            out_printf(out, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%s</text>", x + (bar_w - 6) / 2,
                       height - 10, c->days[d] + 5);
    }
    pgw_buf_append_lit(out, "</svg><p class=\"legend\">");
    for (size_t k = 0; k != c->num_names; ++k) {
        out_printf(out, "<span><svg width=\"12\" height=\"12\"><rect width=\"12\" height=\"12\" fill=\"%s\"/></svg> ", palette[k]);
        out_text(out, k == MAX_DEVELOPERS - 1 && c->num_names == MAX_DEVELOPERS ? "others" : c->names[k]);
        pgw_buf_append_lit(out, "</span> ");
    }
    pgw_buf_append_lit(out, "</p>");
}

/* ---- tables with a bar in a cell: per model, top sessions ---- */

struct table {
    h2o_buffer_t **out;
    double max; /* the first row's cost (rows come by cost, highest first) */
    double ppu;
    size_t rows;
};

static void hbar(h2o_buffer_t **out, double share, const char *fill)
{
    out_printf(out, "<svg width=\"200\" height=\"12\"><rect width=\"%.1f\" height=\"12\" fill=\"%s\"/></svg>",
               share > 0 ? fmax(1, 200 * fmin(1, share)) : 0, fill);
}

static int on_table_row(void *ctx, const pgw_ledger_row_t *row)
{
    struct table *t = ctx;
    if (t->rows++ == 0)
        t->max = row->cost_usd;
    pgw_buf_append_lit(t->out, "<tr><td>");
    out_text(t->out, row->a);
    out_printf(t->out,
               "</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">%lld</td><td class=\"n\">$%.4f</td>"
               "<td class=\"n\">%.0f</td><td>",
               row->requests, row->input + row->cache_read + row->cache_write, row->output, row->cost_usd, row->cost_usd * t->ppu);
    hbar(t->out, t->max > 0 ? row->cost_usd / t->max : 0, "#4e79a7");
    pgw_buf_append_lit(t->out, "</td></tr>");
    return 0;
}

static int table(pgw_store_t *store, h2o_buffer_t **out, const char *title, const char *what, pgw_ledger_group_t by, size_t limit,
                 int64_t since, double ppu, char *err, size_t errsz)
{
    struct table t = {out, 0, ppu, 0};
    pgw_ledger_query_t q = {since, by, limit};
    out_printf(out,
               "<h2>%s</h2><table><tr><th>%s</th><th>requests</th><th>input tokens</th><th>output tokens</th>"
               "<th>cost</th><th>points</th><th></th></tr>",
               title, what);
    if (store->ops->query(store, &q, on_table_row, &t, err, errsz) != 0)
        return -1;
    if (t.rows == 0)
        pgw_buf_append_lit(out, "<tr><td colspan=\"7\">no requests</td></tr>");
    pgw_buf_append_lit(out, "</table>");
    return 0;
}

/* ---- budgets and balance ---- */

static void draw_budgets(h2o_buffer_t **out, const struct page_arg *a)
{
    pgw_buf_append_lit(out, "<h2>Budgets</h2>");
    if (a->num_budgets == 0) {
        pgw_buf_append_lit(out, "<p>No budgets are configured (gateway.keys[].budget, gateway.budgets, gateway.budget).</p>");
        return;
    }
    pgw_buf_append_lit(out, "<table><tr><th>who</th><th>period</th><th>spent</th><th>budget</th><th></th></tr>");
    for (size_t i = 0; i != a->num_budgets; ++i) {
        const struct budget_line *b = a->budgets + i;
        double share = b->limit > 0 ? b->spent / b->limit : 0;
        const char *unit = b->in_points ? "points" : "USD";
        pgw_buf_append_lit(out, "<tr class=\"budget\"><td>");
        out_text(out, b->who);
        out_printf(out, "</td><td>%s</td><td class=\"n\">%.2f %s</td><td class=\"n\">%.2f %s</td><td>",
                   b->monthly ? "month" : "day", b->spent, unit, b->limit, unit);
        hbar(out, share, share >= 1 ? "#e15759" : share >= PGW_BUDGET_WARN_AT ? "#f28e2b" : "#59a14f");
        out_printf(out, " %.0f%%</td></tr>", share * 100);
    }
    pgw_buf_append_lit(out, "</table>");
}

static int on_balance(void *ctx, const pgw_poe_balance_t *b)
{
    h2o_buffer_t **out = ctx;
    char at[32];
    time_t t = (time_t)(b->at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(at, sizeof(at), "%Y-%m-%d %H:%M UTC", &tm);
    out_printf(out, "<p class=\"balance\">Poe balance of upstream key %s: <b>%lld points</b> (at %s)</p>", b->upstream, b->points,
               at);
    return 0;
}

/* ---- reconciliation: the gateway's cost per day against what Poe billed ---- */

struct recon {
    int64_t first_day;
    double usd[DAYS];
    long long poe[DAYS]; /* -1: no figure */
};

static int day_index(const struct recon *r, const char *day)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (strptime(day, "%Y-%m-%d", &tm) == NULL)
        return -1;
    int64_t d = (int64_t)timegm(&tm) / 86400 - r->first_day;
    return d >= 0 && d < DAYS ? (int)d : -1;
}

static int on_gateway_day(void *ctx, const pgw_ledger_row_t *row)
{
    struct recon *r = ctx;
    int d = day_index(r, row->a);
    if (d >= 0)
        r->usd[d] = row->cost_usd;
    return 0;
}

static int on_poe_day(void *ctx, const pgw_poe_day_t *pd)
{
    struct recon *r = ctx;
    int d = day_index(r, pd->day);
    if (d >= 0)
        r->poe[d] = pd->points;
    return 0;
}

static int draw_reconciliation(pgw_store_t *store, h2o_buffer_t **out, int64_t first_day, double ppu, char *err, size_t errsz)
{
    struct recon r;
    memset(&r, 0, sizeof(r));
    r.first_day = first_day;
    for (int d = 0; d != DAYS; ++d)
        r.poe[d] = -1;
    pgw_ledger_query_t q = {first_day * 86400000, PGW_LEDGER_BY_DAY, 0};
    if (store->ops->query(store, &q, on_gateway_day, &r, err, errsz) != 0)
        return -1;
    store->ops->poe_days(store, first_day * 86400000, on_poe_day, &r);
    pgw_buf_append_lit(out, "<h2>Reconciliation with Poe</h2><table><tr><th>day (UTC)</th><th>gateway's cost</th>"
                            "<th>as points</th><th>Poe billed</th><th>drift</th></tr>");
    size_t rows = 0;
    for (int d = DAYS - 1; d >= 0; --d) {
        if (r.usd[d] <= 0 && r.poe[d] < 0)
            continue;
        char day[16];
        time_t t = (time_t)((first_day + d) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
        out_printf(out, "<tr class=\"recon\"><td>%s</td><td class=\"n\">$%.4f</td><td class=\"n\">%.0f</td>", day, r.usd[d],
                   r.usd[d] * ppu);
        if (r.poe[d] >= 0)
            out_printf(out, "<td class=\"n\">%lld</td><td class=\"n\">%+.1f%%</td></tr>", r.poe[d],
                       r.poe[d] > 0 ? (r.usd[d] * ppu - r.poe[d]) * 100 / r.poe[d] : 0.0);
        else
            pgw_buf_append_lit(out, "<td class=\"n\">-</td><td></td></tr>");
        ++rows;
    }
    if (rows == 0)
        pgw_buf_append_lit(out, "<tr><td colspan=\"5\">no requests</td></tr>");
    pgw_buf_append_lit(out, "</table>");
    return 0;
}

static int render_page(pgw_store_t *store, void *arg, h2o_buffer_t **out, const char **content_type, char *err, size_t errsz)
{
    struct page_arg *a = arg;
    struct chart c;
    int64_t now = (int64_t)pgw_now_ms(), today = pgw_ledger_day(now);
    int ret = 500;

    memset(&c, 0, sizeof(c));
    c.first_day = today - (DAYS - 1);
    for (int d = 0; d != DAYS; ++d) {
        time_t t = (time_t)((c.first_day + d) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(c.days[d], sizeof(c.days[d]), "%Y-%m-%d", &tm);
    }
    pgw_ledger_query_t q = {c.first_day * 86400000, PGW_LEDGER_BY_KEY_DAY, 0};

    pgw_buf_append_lit(out, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>poe-gateway usage</title>"
                            "<meta name=\"viewport\" content=\"width=device-width\"><style>"
                            "body{font:14px system-ui,sans-serif;margin:2em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;"
                            "margin-top:1.6em}table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left}"
                            "td.n{text-align:right;font-variant-numeric:tabular-nums}tr:nth-child(even){background:#f6f6f6}"
                            ".legend span{margin-right:1em}</style></head><body><h1>poe-gateway usage</h1>");
    if (store->ops->balances(store, on_balance, out) <= 0)
        pgw_buf_append_lit(out, "<p class=\"balance\">Poe balance: not known yet (gateway.ledger.reconcile_interval polls it)</p>");
    out_printf(out, "<h2>Spend per developer per day (USD, last %d days, UTC)</h2>", DAYS);
    if (store->ops->query(store, &q, on_key_day, &c, err, errsz) != 0)
        goto Exit;
    draw_chart(out, &c);
    draw_budgets(out, a);
    int64_t since = c.first_day * 86400000;
    if (draw_reconciliation(store, out, c.first_day, a->points_per_usd, err, errsz) != 0)
        goto Exit;
    if (table(store, out, "Per model (last 14 days)", "Poe bot", PGW_LEDGER_BY_MODEL, 0, since, a->points_per_usd, err, errsz) !=
            0 ||
        table(store, out, "Top sessions (last 14 days)", "Claude Code session", PGW_LEDGER_BY_SESSION, TOP_SESSIONS, since,
              a->points_per_usd, err, errsz) != 0)
        goto Exit;
    pgw_buf_append_lit(out, "<p>Also: <code>poe-gateway usage --by day</code> in a terminal; JSON at /usage without "
                            "<code>Accept: text/html</code>.</p></body></html>");
    *content_type = "text/html; charset=utf-8";
    ret = 200;
Exit:
    for (size_t k = 0; k != c.num_names; ++k)
        free(c.names[k]);
    return ret;
}

/* One line per configured limit, with the spend as budgets see it now. */
static void add_budget(struct page_arg **a, size_t *cap, pgw_store_t *store, const pgw_config_t *conf, const pgw_budget_t *b,
                       pgw_spender_t kind, const char *name, const char *who, int64_t now)
{
    for (int monthly = 0; monthly != 2; ++monthly) {
        double limit = monthly ? b->monthly : b->daily;
        if (!(limit > 0))
            continue;
        if ((*a)->num_budgets == *cap) {
            *cap = *cap * 2 + 4;
            *a = h2o_mem_realloc(*a, sizeof(**a) + *cap * sizeof((*a)->budgets[0]));
        }
        struct budget_line *l = (*a)->budgets + (*a)->num_budgets++;
        double spent = store->ops->spent(store, kind, name, monthly, now);
        snprintf(l->who, sizeof(l->who), "%s", who);
        l->monthly = monthly;
        l->in_points = b->in_points;
        l->limit = limit;
        l->spent = b->in_points ? spent * conf->points_per_usd : spent;
    }
}

void pgw_usage_page_send(pgw_request_t *r)
{
    const pgw_config_t *conf = r->conf;
    pgw_store_t *store = pgw_store_get();
    size_t cap = 0;
    int64_t now = (int64_t)pgw_now_ms();
    struct page_arg *a = h2o_mem_alloc(sizeof(*a));
    char who[192];

    a->points_per_usd = conf->points_per_usd;
    a->num_budgets = 0;
    for (size_t i = 0; i != conf->num_keys; ++i) {
        snprintf(who, sizeof(who), "key %s", conf->keys[i].name);
        add_budget(&a, &cap, store, conf, &conf->keys[i].budget, PGW_SPENDER_CALLER, conf->keys[i].name, who, now);
    }
    for (size_t i = 0; i != conf->num_budgets; ++i)
        add_budget(&a, &cap, store, conf, &conf->budgets[i].budget, PGW_SPENDER_CALLER, conf->budgets[i].name,
                   conf->budgets[i].name, now);
    if (conf->team_budget.daily > 0 || conf->team_budget.monthly > 0) {
        /* one team budget per distinct upstream key */
        char seen[64][16];
        size_t num_seen = 0;
        for (size_t i = 0; i != conf->num_routes && num_seen != 64; ++i) {
            const char *fp = conf->routes[i].api_key_fp;
            size_t j;
            for (j = 0; j != num_seen; ++j)
                if (strcmp(seen[j], fp) == 0)
                    break;
            if (j != num_seen || conf->routes[i].api_key == NULL)
                continue;
            strcpy(seen[num_seen++], fp);
            snprintf(who, sizeof(who), "the team (upstream key %s)", fp);
            add_budget(&a, &cap, store, conf, &conf->team_budget, PGW_SPENDER_UPSTREAM, fp, who, now);
        }
    }
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    pgw_usage_run(r, render_page, a);
}

void pgw_usage_page_login(pgw_request_t *r, int wrong)
{
    static const char head[] =
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>poe-gateway usage: sign in</title>"
        "<style>body{font:14px system-ui,sans-serif;margin:3em}input{font:inherit;padding:4px;width:28em}</style></head><body>"
        "<h1>poe-gateway usage</h1>";
    static const char form[] = "<form method=\"get\" action=\"/usage\" autocomplete=\"off\"><p><label>Master key "
                               "<input type=\"password\" name=\"key\" autofocus></label></p><p><button>Sign in</button></p>"
                               "<p>The key is exchanged for a cookie that lasts 12 hours; the gateway does not log it.</p>"
                               "</form></body></html>";
    h2o_buffer_t *buf;
    h2o_buffer_init(&buf, &h2o_socket_buffer_prototype);
    pgw_buf_append(&buf, head, sizeof(head) - 1);
    if (wrong)
        pgw_buf_append_lit(&buf, "<p><b>That is not the master key.</b></p>");
    pgw_buf_append(&buf, form, sizeof(form) - 1);
    h2o_add_header(&r->req->pool, &r->req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    pgw_send_body(r->req, 401, "text/html; charset=utf-8", buf->bytes, buf->size);
    h2o_buffer_dispose(&buf);
}
