/* IEEE CRC-32: slice-by-16 table kernel, tier list and runtime dispatch. */
#include <string.h>

#include "crc32.h"
#include "cpu.h"

#define EVS_CRC32_WANT_TABLE
#include "crc32_constants.h"

#define T evs_crc32_table

/* Little-endian 32-bit load at any alignment (memcpy compiles to one mov). */
static inline uint32_t load32le(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

#if defined(__GNUC__) || defined(__clang__)
#define EVS_ALWAYS_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define EVS_ALWAYS_INLINE static __forceinline
#else
#define EVS_ALWAYS_INLINE static inline
#endif

/* Register c after n (1..15, a constant at every call) more bytes: byte i is followed by n-1-i bytes,
 * so it is looked up in table n-1-i; the register's low bytes ride on the first four data bytes and,
 * when n < 4, its untouched high bytes shift down. Written out (not a loop) so that every compiler
 * folds it into n independent lookups. */
#define TAIL_BYTE(i) \
    ((i) < n ? T[(n - 1 - (i)) & 15][(p[(i) < n ? (i) : 0] ^ ((i) < 4 ? c >> (8 * ((i) & 3)) : 0)) & 0xff] : 0)

EVS_ALWAYS_INLINE uint32_t tail_n(uint32_t c, const unsigned char *p, size_t n)
{
    return (((TAIL_BYTE(0) ^ TAIL_BYTE(1)) ^ (TAIL_BYTE(2) ^ TAIL_BYTE(3))) ^
            ((TAIL_BYTE(4) ^ TAIL_BYTE(5)) ^ (TAIL_BYTE(6) ^ TAIL_BYTE(7)))) ^
           (((TAIL_BYTE(8) ^ TAIL_BYTE(9)) ^ (TAIL_BYTE(10) ^ TAIL_BYTE(11))) ^
            ((TAIL_BYTE(12) ^ TAIL_BYTE(13)) ^ (TAIL_BYTE(14) ^ (n < 4 ? c >> (8 * (n & 3)) : 0))));
}

uint32_t evs_crc32_software(uint32_t crc, const unsigned char *p, size_t len)
{
    uint32_t c = ~crc;
    /* 16 independent lookups per step: bounded by load throughput, not by the dependency chain. */
    while (len >= 16) {
        uint32_t a = load32le(p) ^ c, b = load32le(p + 4), d = load32le(p + 8), e = load32le(p + 12);
        c = T[15][a & 0xff] ^ T[14][(a >> 8) & 0xff] ^ T[13][(a >> 16) & 0xff] ^ T[12][a >> 24] ^
            T[11][b & 0xff] ^ T[10][(b >> 8) & 0xff] ^ T[9][(b >> 16) & 0xff] ^ T[8][b >> 24] ^
            T[7][d & 0xff] ^ T[6][(d >> 8) & 0xff] ^ T[5][(d >> 16) & 0xff] ^ T[4][d >> 24] ^
            T[3][e & 0xff] ^ T[2][(e >> 8) & 0xff] ^ T[1][(e >> 16) & 0xff] ^ T[0][e >> 24];
        p += 16;
        len -= 16;
    }
    /* The last 0..15 bytes in ONE round of independent lookups, no byte-serial chain: a switch on the
     * length picks code with constant shifts (the 8-byte prelude costs 8 lookups). */
    switch (len) {
    case 15: c = tail_n(c, p, 15); break;
    case 14: c = tail_n(c, p, 14); break;
    case 13: c = tail_n(c, p, 13); break;
    case 12: c = tail_n(c, p, 12); break;
    case 11: c = tail_n(c, p, 11); break;
    case 10: c = tail_n(c, p, 10); break;
    case 9: c = tail_n(c, p, 9); break;
    case 8: c = tail_n(c, p, 8); break;
    case 7: c = tail_n(c, p, 7); break;
    case 6: c = tail_n(c, p, 6); break;
    case 5: c = tail_n(c, p, 5); break;
    case 4: c = tail_n(c, p, 4); break;
    case 3: c = tail_n(c, p, 3); break;
    case 2: c = tail_n(c, p, 2); break;
    case 1: c = tail_n(c, p, 1); break;
    default: break;
    }
    return ~c;
}

/* ---- tiers ---- */

enum { RANK_SOFTWARE = 0 };

typedef struct {
    const char *name;
    int rank;          /* forced-tier clamping compares ranks, so names of the other architecture work */
    evs_crc32_fn fn;
    unsigned needs;    /* evs_cpu_features() bits */
} evs_tier;

#define X86_PCLMUL_NEEDS (EVS_CPU_X86_SSE41 | EVS_CPU_X86_PCLMULQDQ)
#define X86_AVX2_NEEDS (X86_PCLMUL_NEEDS | EVS_CPU_X86_AVX | EVS_CPU_X86_AVX2 | EVS_CPU_X86_VPCLMULQDQ)
#define X86_AVX512_NEEDS \
    (X86_AVX2_NEEDS | EVS_CPU_X86_AVX512F | EVS_CPU_X86_AVX512BW | EVS_CPU_X86_AVX512VL)

static const evs_tier tiers[] = {
    {"software", 0, evs_crc32_software, 0},
#ifdef EVS_CRC32_HAVE_X86_PCLMUL
    {"pclmulqdq", 1, evs_crc32_pclmul, X86_PCLMUL_NEEDS},
#endif
#ifdef EVS_CRC32_HAVE_X86_VPCLMUL_AVX2
    {"vpclmulqdq-avx2", 2, evs_crc32_vpclmul_avx2, X86_AVX2_NEEDS},
#endif
#ifdef EVS_CRC32_HAVE_X86_VPCLMUL_AVX512
    {"vpclmulqdq-avx512", 3, evs_crc32_vpclmul_avx512, X86_AVX512_NEEDS},
#endif
#ifdef EVS_CRC32_HAVE_ARM_CRC
    {"armv8-crc", 1, evs_crc32_armv8, EVS_CPU_ARM_CRC32},
#endif
#ifdef EVS_CRC32_HAVE_ARM_PMULL
    {"armv8-crc-pmull", 2, evs_crc32_armv8_pmull, EVS_CPU_ARM_CRC32 | EVS_CPU_ARM_PMULL},
#endif
};

#define NTIERS ((int)(sizeof(tiers) / sizeof(tiers[0])))

/* Every name a caller may force, with its rank, whatever this build's architecture. */
static const struct {
    const char *name;
    int rank;
} known_names[] = {
    {"software", 0},          {"pclmulqdq", 1},   {"armv8-crc", 1},
    {"vpclmulqdq-avx2", 2},   {"armv8-crc-pmull", 2}, {"vpclmulqdq-avx512", 3},
};

evs_crc32_fn evs_crc32 = evs_crc32_software;
static int current_tier = 0;

int evs_crc32_tier_count(void) { return NTIERS; }

const char *evs_crc32_tier_name(int i) { return (i >= 0 && i < NTIERS) ? tiers[i].name : NULL; }

int evs_crc32_tier_available(int i)
{
    if (i < 0 || i >= NTIERS)
        return 0;
    return (evs_cpu_features() & tiers[i].needs) == tiers[i].needs;
}

evs_crc32_fn evs_crc32_tier_fn(int i) { return evs_crc32_tier_available(i) ? tiers[i].fn : NULL; }

const char *evs_crc32_backend(void) { return tiers[current_tier].name; }

int evs_crc32_init(const char *forced)
{
    int max_rank = 1 << 30, best = 0, i;
    if (forced && forced[0]) {
        size_t k;
        max_rank = -1;
        for (k = 0; k < sizeof(known_names) / sizeof(known_names[0]); k++)
            if (strcmp(forced, known_names[k].name) == 0)
                max_rank = known_names[k].rank;
        if (max_rank < 0)
            return -1;
    }
    /* Tiers are listed slowest first: the last available one within the rank cap wins. */
    for (i = 0; i < NTIERS; i++)
        if (tiers[i].rank <= max_rank && evs_crc32_tier_available(i))
            best = i;
    current_tier = best;
    evs_crc32 = tiers[best].fn;
    return 0;
}
