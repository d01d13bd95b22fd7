/*
 * bench/backtest/gen: writes N scores (default 20,000,000), one per line with
 * six decimals, to stdout: normal(0.7, 0.1) clamped to [0, 1], seeded, with a
 * one-sd drop in the middle tenth of the stream so that the detector raises
 * and clears alarms while it is timed.
 */
#include "common/rng.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    struct rng r;
    rng_seed(&r, 2026);
    static char out[1 << 20];
    size_t len = 0;
    for (long i = 0; i < n; i++) {
        double mean = (i >= n / 2 && i < n / 2 + n / 10) ? 0.6 : 0.7;
        double x = mean + 0.1 * rng_normal(&r);
        x = x < 0 ? 0 : x > 1 ? 1 : x;
        long micro = (long)(x * 1e6 + 0.5);
        if (len + 16 > sizeof out) {
            fwrite(out, 1, len, stdout);
            len = 0;
        }
        len += (size_t)snprintf(out + len, 16, "%ld.%06ld\n", micro / 1000000, micro % 1000000);
    }
    fwrite(out, 1, len, stdout);
    return fflush(stdout) != 0;
}
