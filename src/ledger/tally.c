/* poe-gateway: MIT licence. Running totals of spend per spender (src/ledger/tally.h).
 *
 * A chained hash table of spenders, each with the day and month its two totals belong to. One mutex guards it: a budget
 * check and a record each hold it for one lookup. Spenders are few (keys, logins and upstream keys), so entries are
 * never removed; a total of a past period simply reads as 0.
 */
#include <stdlib.h>
#include <string.h>
#include <h2o/memory.h>
#include "ledger/tally.h"

#define NUM_BUCKETS 256

struct spender {
    struct spender *next;
    pgw_spender_t who;
    int64_t day, month;
    double day_usd, month_usd;
    char name[];
};

struct st_pgw_tally_t {
    pthread_mutex_t mutex;
    struct spender *buckets[NUM_BUCKETS];
};

pgw_tally_t *pgw_tally_create(void)
{
    pgw_tally_t *t = h2o_mem_alloc(sizeof(*t));
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->mutex, NULL);
    return t;
}

void pgw_tally_destroy(pgw_tally_t *t)
{
    for (size_t i = 0; i != NUM_BUCKETS; ++i) {
        struct spender *s = t->buckets[i], *next;
        for (; s != NULL; s = next) {
            next = s->next;
            free(s);
        }
    }
    pthread_mutex_destroy(&t->mutex);
    free(t);
}

static size_t bucket_of(pgw_spender_t who, const char *name)
{
    size_t h = 2166136261u ^ (size_t)who; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; ++p)
        h = (h ^ *p) * 16777619u;
    return h % NUM_BUCKETS;
}

static struct spender *find(pgw_tally_t *t, pgw_spender_t who, const char *name, int create)
{
    size_t b = bucket_of(who, name);
    for (struct spender *s = t->buckets[b]; s != NULL; s = s->next)
        if (s->who == who && strcmp(s->name, name) == 0)
            return s;
    if (!create)
        return NULL;
    size_t len = strlen(name);
    struct spender *s = h2o_mem_alloc(sizeof(*s) + len + 1);
    *s = (struct spender){t->buckets[b], who, -1, -1, 0, 0};
    memcpy(s->name, name, len + 1);
    t->buckets[b] = s;
    return s;
}

void pgw_tally_add(pgw_tally_t *t, pgw_spender_t who, const char *name, double usd, int64_t at_ms)
{
    if (!(usd > 0))
        return;
    int64_t day = pgw_ledger_day(at_ms), month = pgw_ledger_month(at_ms);
    pthread_mutex_lock(&t->mutex);
    struct spender *s = find(t, who, name, 1);
    if (day > s->day) {
        s->day = day;
        s->day_usd = 0;
    }
    if (day == s->day)
        s->day_usd += usd;
    if (month > s->month) {
        s->month = month;
        s->month_usd = 0;
    }
    if (month == s->month)
        s->month_usd += usd;
    pthread_mutex_unlock(&t->mutex);
}

double pgw_tally_get(pgw_tally_t *t, pgw_spender_t who, const char *name, int monthly, int64_t now_ms)
{
    double usd = 0;
    pthread_mutex_lock(&t->mutex);
    struct spender *s = find(t, who, name, 0);
    if (s != NULL) {
        if (monthly)
            usd = s->month == pgw_ledger_month(now_ms) ? s->month_usd : 0;
        else
            usd = s->day == pgw_ledger_day(now_ms) ? s->day_usd : 0;
    }
    pthread_mutex_unlock(&t->mutex);
    return usd;
}
