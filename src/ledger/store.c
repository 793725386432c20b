/* poe-gateway: MIT licence. What every ledger backend shares: the process's store and UTC
 * periods (budgets reset at 00:00 UTC, and on the first of the month). */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "ledger/store.h"

static _Atomic(pgw_store_t *) current;

pgw_store_t *pgw_store_get(void)
{
    return atomic_load_explicit(&current, memory_order_acquire);
}

void pgw_store_set(pgw_store_t *s)
{
    atomic_store_explicit(&current, s, memory_order_release);
}

int64_t pgw_ledger_day(int64_t ms)
{
    return ms / 86400000;
}

int64_t pgw_ledger_month(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int64_t)(tm.tm_year + 1900) * 12 + tm.tm_mon;
}

int64_t pgw_ledger_period_start(int64_t ms, int monthly)
{
    if (!monthly)
        return pgw_ledger_day(ms) * 86400000;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

int64_t pgw_ledger_period_end(int64_t ms, int monthly)
{
    if (!monthly)
        return (pgw_ledger_day(ms) + 1) * 86400000;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (++tm.tm_mon == 12) {
        tm.tm_mon = 0;
        ++tm.tm_year;
    }
    return (int64_t)timegm(&tm) * 1000;
}

void pgw_ledger_copy(char *dst, size_t dstsz, const char *src, size_t len)
{
    if (src == NULL)
        len = 0;
    if (len >= dstsz) {
        len = dstsz - 1;
        while (len != 0 && ((unsigned char)src[len] & 0xc0) == 0x80) /* not in the middle of a character */
            --len;
    }
    if (len != 0)
        memcpy(dst, src, len);
    dst[len] = '\0';
}
