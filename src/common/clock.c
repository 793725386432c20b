/* poe-gateway: MIT licence. The wall clock in milliseconds. */
#include <stddef.h>
#include <sys/time.h>
#include "common/clock.h"

uint64_t pgw_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}
