/*
 * bench/backtest/baseline: the reference reader for the backtest benchmark.
 * Reads stdin with the same 1 MiB blocks, splits lines with memchr and
 * converts each with strtod, summing the values; no detector. Prints the
 * count and the sum (so the work cannot be optimised away).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    static char buf[(1 << 20) + 1];
    size_t have = 0;
    long n = 0;
    double sum = 0;
    for (;;) {
        size_t got = fread(buf + have, 1, sizeof buf - 1 - have, stdin);
        size_t len = have + got;
        buf[len] = 0;
        char *p = buf, *end = buf + len;
        char *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            *nl = 0;
            sum += strtod(p, NULL);
            n++;
            p = nl + 1;
        }
        have = (size_t)(end - p);
        memmove(buf, p, have);
        if (got == 0)
            break;
    }
    printf("%ld %.6f\n", n, sum);
    return 0;
}
