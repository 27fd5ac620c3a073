/* Per-call cost of every available tier (not run by the tests; see tests/test_crc32_native.py).
 *
 *   cc -O2 -Iext tests/c/bench_crc32.c ext/crc32.c ext/crc32_x86.c ext/crc32_arm.c ext/cpu.c -o b && ./b
 *   ./b [TIER|all [SIZE...]]     one tier and/or other sizes (at most 1 MiB)
 *
 * "ns/call" chains each call's result into the next one's seed (the latency a streaming parser sees);
 * sizes from 64 KiB on are also given in GB/s. Best of several rounds, to shrug off frequency ramps.
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crc32.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    size_t sizes[32] = {8, 16, 32, 64, 256, 1024, 4096, 65536, 1048576};
    size_t nsizes = 9;
    const char *only = argc > 1 && strcmp(argv[1], "all") != 0 ? argv[1] : NULL;
    size_t maxlen = 1048576 + 64, i, s;
    unsigned char *raw = (unsigned char *)malloc(maxlen + 64);
    unsigned char *buf = (unsigned char *)(((size_t)raw + 63) & ~(size_t)63);
    int t;

    if (argc > 2) {
        for (nsizes = 0; nsizes + 2 < (size_t)argc && nsizes < 32; nsizes++) {
            sizes[nsizes] = (size_t)strtoul(argv[nsizes + 2], NULL, 10);
            if (sizes[nsizes] > 1048576)
                sizes[nsizes] = 1048576;
        }
    }
    for (i = 0; i < maxlen; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 9));
    printf("%-18s", "tier");
    for (s = 0; s < nsizes; s++)
        printf(" %9zu", sizes[s]);
    printf("   (ns per call; GB/s for the large sizes)\n");
    for (t = 0; t < evs_crc32_tier_count(); t++) {
        evs_crc32_fn fn = evs_crc32_tier_fn(t);
        if (!fn || (only && strcmp(only, evs_crc32_tier_name(t)) != 0))
            continue;
        printf("%-18s", evs_crc32_tier_name(t));
        for (s = 0; s < nsizes; s++) {
            size_t len = sizes[s];
            /* ~20 ms per round whatever the size */
            size_t iters = 20000000 / (len + 16) + 10, r, k;
            double best = 1e30;
            uint32_t c = 0;
            for (r = 0; r < 7; r++) {
                double t0 = now_ns(), dt;
                for (k = 0; k < iters; k++)
                    c = fn(c, buf, len);
                dt = (now_ns() - t0) / (double)iters;
                if (dt < best)
                    best = dt;
            }
            if (c == 0x12345678u)
                printf("!"); /* keeps c alive */
            if (len >= 65536)
                printf(" %7.1fGB", len / best);
            else
                printf(" %9.1f", best);
        }
        printf("\n");
    }
    free(raw);
    return 0;
}
