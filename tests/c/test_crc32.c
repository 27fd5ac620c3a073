/* Standalone test of ext/crc32*: every tier this CPU has against a bitwise reference.
 *
 *   cc -O2 -Iext tests/c/test_crc32.c ext/crc32.c ext/crc32_x86.c ext/crc32_arm.c ext/cpu.c -o t && ./t
 *   ./t --quick      smaller sweep (for emulators)
 *
 * Built with -DEVS_TEST_EXTRA_KERNEL=fn -DEVS_TEST_EXTRA_NAME='"name"' and the file defining fn (e.g.
 * tests/c/avx512_emulated.c), it also sweeps that kernel, when this CPU has the AVX2 tier it builds on.
 *
 * Prints one line per tier and "N passed, N failed" last; exits non-zero on any failure.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32.h"

#ifdef EVS_TEST_EXTRA_KERNEL
uint32_t EVS_TEST_EXTRA_KERNEL(uint32_t crc, const unsigned char *buf, size_t len);
#endif

#define MAXLEN 4096
#define MAXMIS 64

static int passed, failed;

static void check(int ok, const char *what, const char *tier, size_t len, size_t mis, uint32_t got,
                  uint32_t want)
{
    if (ok) {
        passed++;
        return;
    }
    if (failed < 20)
        printf("FAIL %s [%s] len=%zu mis=%zu got=%08x want=%08x\n", what, tier, len, mis, (unsigned)got,
               (unsigned)want);
    failed++;
}

/* One bit at a time, straight from the definition: the oracle. */
static uint32_t ref_update(uint32_t reg, unsigned char b)
{
    int k;
    reg ^= b;
    for (k = 0; k < 8; k++)
        reg = (reg >> 1) ^ (0xEDB88320u & (0u - (reg & 1u)));
    return reg;
}

static uint32_t ref_crc(uint32_t crc, const unsigned char *p, size_t n)
{
    uint32_t reg = ~crc;
    while (n--)
        reg = ref_update(reg, *p++);
    return ~reg;
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned char rnd8(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned char)(rng >> 24);
}

static int sweep_len(size_t len, int quick)
{
    size_t k;
    if (!quick || len <= 600)
        return 1;
    for (k = 64; k <= MAXLEN; k *= 2)
        if (len + 1 >= k && len <= k + 1)
            return 1;
    return len % 61 == 0;
}

static int sweep_mis(size_t mis, int quick)
{
    return !quick || mis < 4 || mis == 7 || mis == 8 || mis == 15 || mis == 16 || mis == 31 || mis == 63;
}

static unsigned char *alloc64(size_t n)
{
    /* 64-byte aligned base so "misalignment m" means exactly m bytes past a cache line. */
    unsigned char *raw = (unsigned char *)malloc(n + 64);
    return raw;
}

#define ALIGN64(p) ((unsigned char *)(((uintptr_t)(p) + 63) & ~(uintptr_t)63))

static void test_tier(const char *name, evs_crc32_fn fn, int quick)
{
    static unsigned char pattern[MAXLEN];
    static uint32_t ref0[MAXLEN + 1], refs[MAXLEN + 1];
    const uint32_t seed = 0x8BADF00Du;
    unsigned char *raw = alloc64(MAXLEN + MAXMIS + 64), *base = ALIGN64(raw);
    int before = failed;
    size_t len, mis, s;
    uint32_t r0 = ~0u, rs = ~seed;

    for (len = 0; len < MAXLEN; len++)
        pattern[len] = rnd8();
    /* Prefix CRCs from two running registers: one bitwise pass gives every length's answer. */
    for (len = 0; len <= MAXLEN; len++) {
        ref0[len] = ~r0;
        refs[len] = ~rs;
        if (len < MAXLEN) {
            r0 = ref_update(r0, pattern[len]);
            rs = ref_update(rs, pattern[len]);
        }
    }

    /* Lengths 0..4096 x misalignments 0..63, seed 0 and a non-zero seed. Guard bytes after the end
     * catch over-reads that change the result; bytes before the start are poisoned the same way. */
    for (mis = 0; mis < MAXMIS; mis++) {
        if (!sweep_mis(mis, quick))
            continue;
        memset(base, 0xA5, MAXLEN + MAXMIS + 1);
        memcpy(base + mis, pattern, MAXLEN);
        for (len = 0; len <= MAXLEN; len++) {
            uint32_t g0, gs;
            if (!sweep_len(len, quick))
                continue;
            g0 = fn(0, base + mis, len);
            gs = fn(seed, base + mis, len);
            check(g0 == ref0[len], "sweep", name, len, mis, g0, ref0[len]);
            check(gs == refs[len], "sweep-seed", name, len, mis, gs, refs[len]);
        }
    }

    /* Chaining across every split point of a 1000-byte and of the 4096-byte buffer. */
    {
        static const size_t totals[] = {1000, MAXLEN};
        size_t t;
        for (t = 0; t < 2; t++) {
            size_t n = totals[t], step = quick && n > 1000 ? 7 : 1;
            for (s = 0; s <= n; s += step) {
                uint32_t g = fn(fn(seed, pattern, s), pattern + s, n - s);
                check(g == refs[n], "split", name, n, s, g, refs[n]);
            }
        }
    }

    /* Large buffers: odd sizes around the wide kernels' block multiples, against the bitwise oracle. */
    {
        static const size_t sizes[] = {65536, 65536 + 13, 1048576 + 77, 3 * 8192 * 5 + 3 * 1024 * 3 + 5};
        size_t big = 1048576 + 256, i, t;
        unsigned char *braw = (unsigned char *)malloc(big + 64), *b = ALIGN64(braw);
        for (i = 0; i < big; i++)
            b[i] = rnd8();
        for (t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
            size_t n = sizes[t], m = t * 5 % 64;
            uint32_t want, got;
            if (quick && n > 200000)
                n = 200000 + t;
            want = ref_crc(t, b + m, n);
            got = fn((uint32_t)t, b + m, n);
            check(got == want, "large", name, n, m, got, want);
        }
        /* Past 32 KiB at every offset from a cache line that changes how a head is split off (the zmm
         * tier aligns its loop), against the bitwise oracle. */
        {
            static const size_t offsets[] = {1, 16, 31, 32, 33, 40, 48, 63};
            static const size_t lens[] = {32768, 32768 + 95, 40000 + 7};
            size_t o, l;
            for (o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++)
                for (l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                    size_t n = lens[l], m = offsets[o];
                    uint32_t want = ref_crc(seed, b + m, n), got = fn(seed, b + m, n);
                    check(got == want, "large-offset", name, n, m, got, want);
                }
        }
        free(braw);
    }

    /* Exact-size heap copies: under AddressSanitizer any read outside [p, p + len) is reported. */
    for (len = 0; len <= 700; len++) {
        unsigned char *e = (unsigned char *)malloc(len ? len : 1);
        uint32_t g;
        memcpy(e, pattern, len);
        g = fn(seed, e, len);
        check(g == refs[len], "exact-alloc", name, len, 0, g, refs[len]);
        free(e);
    }

    {
        static const unsigned char digits[] = "123456789";
        uint32_t g = fn(0, digits, 9);
        check(g == 0xCBF43926u, "check-value", name, 9, 0, g, 0xCBF43926u);
    }

    printf("tier %-18s %s\n", name, failed == before ? "ok" : "FAILED");
    free(raw);
}

/* Ranks of the tier names, per the contract: forced names clamp by rank. */
static int rank_of(const char *name)
{
    static const char *const names[] = {"software",        "pclmulqdq",       "armv8-crc",
                                        "vpclmulqdq-avx2", "armv8-crc-pmull", "vpclmulqdq-avx512"};
    static const int ranks[] = {0, 1, 1, 2, 2, 3};
    int i;
    for (i = 0; i < 6; i++)
        if (strcmp(name, names[i]) == 0)
            return ranks[i];
    return -1;
}

static void test_forcing(void)
{
    static const char *const names[] = {"software",        "pclmulqdq",       "armv8-crc",
                                        "vpclmulqdq-avx2", "armv8-crc-pmull", "vpclmulqdq-avx512"};
    int n = evs_crc32_tier_count(), i, t, best_all = 0;
    const char *prev;

    for (i = 0; i < n; i++)
        if (evs_crc32_tier_available(i))
            best_all = i;
    check(evs_crc32_init(NULL) == 0, "init-null", "", 0, 0, 0, 0);
    check(strcmp(evs_crc32_backend(), evs_crc32_tier_name(best_all)) == 0, "init-null-best",
          evs_crc32_backend(), 0, 0, 0, 0);
    check(evs_crc32 == evs_crc32_tier_fn(best_all), "init-null-fn", "", 0, 0, 0, 0);
    check(evs_crc32_init("") == 0 && evs_crc32 == evs_crc32_tier_fn(best_all), "init-empty", "", 0, 0, 0, 0);

    for (t = 0; t < 6; t++) {
        int r = rank_of(names[t]), want = 0;
        for (i = 0; i < n; i++)
            if (evs_crc32_tier_available(i) && rank_of(evs_crc32_tier_name(i)) <= r)
                want = i;
        check(evs_crc32_init(names[t]) == 0, "force-known", names[t], 0, 0, 0, 0);
        check(strcmp(evs_crc32_backend(), evs_crc32_tier_name(want)) == 0, "force-clamp", names[t], 0, 0, 0, 0);
        check(evs_crc32 == evs_crc32_tier_fn(want), "force-fn", names[t], 0, 0, 0, 0);
        printf("force %-18s -> %s\n", names[t], evs_crc32_backend());
    }
    check(evs_crc32_init("software") == 0 && strcmp(evs_crc32_backend(), "software") == 0, "force-software",
          "", 0, 0, 0, 0);
    prev = evs_crc32_backend();
    check(evs_crc32_init("sse42") == -1, "unknown-name", "sse42", 0, 0, 0, 0);
    check(evs_crc32_init("Software") == -1, "unknown-case", "Software", 0, 0, 0, 0);
    check(strcmp(evs_crc32_backend(), prev) == 0, "unknown-keeps", prev, 0, 0, 0, 0);
    check(evs_crc32_tier_fn(-1) == NULL && evs_crc32_tier_fn(n) == NULL && evs_crc32_tier_name(n) == NULL,
          "bounds", "", 0, 0, 0, 0);
    check(strcmp(evs_crc32_tier_name(0), "software") == 0, "tier0", "", 0, 0, 0, 0);
    evs_crc32_init(NULL);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int i, n = evs_crc32_tier_count(), avail = 0;

    /* Before init the pointer must already be a working kernel. */
    check(evs_crc32 == evs_crc32_software, "pre-init", "", 0, 0, 0, 0);

    for (i = 0; i < n; i++) {
        evs_crc32_fn fn = evs_crc32_tier_fn(i);
        if (!fn) {
            check(!evs_crc32_tier_available(i), "fn-null-iff-unavailable", evs_crc32_tier_name(i), 0, 0, 0, 0);
            printf("tier %-18s unavailable\n", evs_crc32_tier_name(i));
            continue;
        }
        avail++;
        test_tier(evs_crc32_tier_name(i), fn, quick);
    }

#ifdef EVS_TEST_EXTRA_KERNEL
    for (i = 0; i < n; i++)
        if (strcmp(evs_crc32_tier_name(i), "vpclmulqdq-avx2") == 0) {
            if (evs_crc32_tier_available(i))
                test_tier(EVS_TEST_EXTRA_NAME, EVS_TEST_EXTRA_KERNEL, quick);
            else
                printf("tier %-18s unavailable\n", EVS_TEST_EXTRA_NAME);
        }
#endif

    /* Mixed chaining: every available tier continues any other's CRC. */
    {
        static unsigned char buf[3000];
        size_t k;
        int a, b;
        for (k = 0; k < sizeof(buf); k++)
            buf[k] = rnd8();
        for (a = 0; a < n; a++)
            for (b = 0; b < n; b++) {
                evs_crc32_fn fa = evs_crc32_tier_fn(a), fb = evs_crc32_tier_fn(b);
                uint32_t want = ref_crc(7, buf, sizeof(buf));
                if (!fa || !fb)
                    continue;
                for (k = 0; k <= sizeof(buf); k += 97) {
                    uint32_t g = fb(fa(7, buf, k), buf + k, sizeof(buf) - k);
                    check(g == want, "mixed-chain", evs_crc32_tier_name(b), sizeof(buf), k, g, want);
                }
            }
    }

    test_forcing();
    printf("backend %s (%d of %d tiers available)\n", evs_crc32_backend(), avail, n);
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
