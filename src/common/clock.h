/* poe-gateway: MIT licence. The wall clock in milliseconds, for rate budgets, deadlines, caches and uptime. */
#ifndef PGW_CLOCK_H
#define PGW_CLOCK_H

#include <stdint.h>

/**
 * Wall-clock time in milliseconds since the epoch. Any thread may call it.
 */
uint64_t pgw_now_ms(void);

#endif
