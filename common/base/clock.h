/* clock.h - the one place for time: monotonic and wall-clock milliseconds,
 * and a sleep that finishes its time even when a signal interrupts it.
 * Monotonic time measures durations and deadlines; wall time only goes
 * into records that people read (never into apply, I4). */
#ifndef BK_CLOCK_H
#define BK_CLOCK_H

#include <errno.h>
#include <stdint.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC: deadlines and durations. */
static inline int64_t bk_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Nanoseconds of CLOCK_MONOTONIC: fine-grained timings (metrics). */
static inline int64_t bk_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Fractional milliseconds of CLOCK_MONOTONIC: latencies. */
static inline double bk_mono_msf(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): timestamps. */
static inline int64_t bk_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep up to ms milliseconds (none if ms <= 0); a signal ends the sleep
 * early, so that a loop sees its stop flag at once. */
static inline void bk_sleep_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Sleep ms milliseconds, resumed after a signal. */
static inline void bk_sleep_full_ms(int64_t ms) {
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#endif
