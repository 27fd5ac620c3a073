/* IEEE CRC-32 on ARMv8: the CRC32 instructions (__crc32b/h/w/d are IEEE; the __crc32c* ones are
 * Castagnoli and must never be used here) and PMULL folding.
 *
 * armv8-crc:       one CRC32X chain for short inputs; three independent streams for long ones (the
 *                  instruction has a latency of ~3 cycles but issues every cycle), merged by a carry-less
 *                  multiply by x^(8n) mod P (in software here: PMULL may be missing).
 * armv8-crc-pmull: 128-bit PMULL folding with 8 accumulators (the x86 PCLMULQDQ scheme, same constants),
 *                  the 128-bit remainder and the tail finished with CRC32X.
 * Per-function target attributes: this file builds with default flags.
 */
#include "crc32.h"
#include "crc32_constants.h"

#ifdef EVS_CRC32_HAVE_ARM_CRC

#include <string.h>

#if defined(_MSC_VER) && !defined(__clang__)
#include <arm64_neon.h>
#include <intrin.h>
#define TARGET_CRC
#define TARGET_CRC_PMULL
#define CRC32B __crc32b
#define CRC32H __crc32h
#define CRC32W __crc32w
#define CRC32D __crc32d
#else
#include <arm_neon.h>
#if defined(__clang__)
#define TARGET_CRC __attribute__((target("crc")))
#define TARGET_CRC_PMULL __attribute__((target("crc,aes")))
/* The builtins need only the function's target, not a global -march with +crc. */
#define CRC32B __builtin_arm_crc32b
#define CRC32H __builtin_arm_crc32h
#define CRC32W __builtin_arm_crc32w
#define CRC32D __builtin_arm_crc32d
#else
#include <arm_acle.h>
#define TARGET_CRC __attribute__((target("+crc")))
#define TARGET_CRC_PMULL __attribute__((target("+crc+crypto")))
#define CRC32B __crc32b
#define CRC32H __crc32h
#define CRC32W __crc32w
#define CRC32D __crc32d
#endif
#endif

static inline uint64_t ld64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t ld32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint16_t ld16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* c is the CRC register (already inverted). */
TARGET_CRC static inline uint32_t crc_chain(uint32_t c, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        c = CRC32D(c, ld64(p));
        p += 8;
        len -= 8;
    }
    if (len & 4) {
        c = CRC32W(c, ld32(p));
        p += 4;
    }
    if (len & 2) {
        c = CRC32H(c, ld16(p));
        p += 2;
    }
    if (len & 1)
        c = CRC32B(c, *p);
    return c;
}

/* Carry-less 32x32 -> 64 product, branch-free; runs twice per 3-stream block. */
static inline uint64_t clmul32(uint32_t a, uint32_t b)
{
    uint64_t r = 0;
    int i;
    for (i = 0; i < 32; i++)
        r ^= ((uint64_t)a << i) & (0 - (uint64_t)((b >> i) & 1));
    return r;
}

/* Register c advanced over n zero bytes, k = x^(8n-33) mod P: the product carries x^(8n-32), and
 * CRC32X of it with a zero register multiplies by x^32 and reduces. */
TARGET_CRC static inline uint32_t shift_sw(uint32_t c, uint32_t k) { return CRC32D(0, clmul32(c, k)); }

/* Three streams of n bytes each (n a multiple of 8); the later two start from a zero register and are
 * merged by linearity: crc(A|B|C) = shift(shift(a) ^ b) ^ c. */
TARGET_CRC static uint32_t crc_3way(uint32_t c, const unsigned char *p, size_t n, uint32_t k)
{
    uint32_t c1 = 0, c2 = 0;
    const unsigned char *q = p + n, *r = p + 2 * n;
    size_t i;
    for (i = 0; i < n; i += 8) {
        c = CRC32D(c, ld64(p + i));
        c1 = CRC32D(c1, ld64(q + i));
        c2 = CRC32D(c2, ld64(r + i));
    }
    c = shift_sw(c, k) ^ c1;
    return shift_sw(c, k) ^ c2;
}

TARGET_CRC uint32_t evs_crc32_armv8(uint32_t crc, const unsigned char *p, size_t len)
{
    uint32_t c = ~crc;
    /* Two block sizes: large ones amortise the ~100-cycle software merges; the small one still beats a
     * single chain (3 x 1 KiB: ~400 cycles + merges vs ~1150). */
    while (len >= 3 * 8192) {
        c = crc_3way(c, p, 8192, EVS_CRC32_SHIFT_8192);
        p += 3 * 8192;
        len -= 3 * 8192;
    }
    while (len >= 3 * 1024) {
        c = crc_3way(c, p, 1024, EVS_CRC32_SHIFT_1024);
        p += 3 * 1024;
        len -= 3 * 1024;
    }
    return ~crc_chain(c, p, len);
}

#ifdef EVS_CRC32_HAVE_ARM_PMULL

#define LOADV(p) vreinterpretq_u64_u8(vld1q_u8(p))
#define KV(d) vcombine_u64(vcreate_u64(EVS_CRC32_FOLD_##d##_LO), vcreate_u64(EVS_CRC32_FOLD_##d##_HI))

/* x carried forward over the distance k was made for (lanes multiply their own constant). */
TARGET_CRC_PMULL static inline uint64x2_t fold(uint64x2_t x, uint64x2_t k)
{
    poly128_t lo = vmull_p64((poly64_t)vgetq_lane_u64(x, 0), (poly64_t)vgetq_lane_u64(k, 0));
    poly128_t hi = vmull_high_p64(vreinterpretq_p64_u64(x), vreinterpretq_p64_u64(k));
    return veorq_u64(vreinterpretq_u64_p128(lo), vreinterpretq_u64_p128(hi));
}

#define FOLD_XOR(x, k, d) veorq_u64(fold((x), (k)), (d))

#define PMULL_MIN 128 /* below: one CRC32X chain is as fast and has no setup */

TARGET_CRC_PMULL uint32_t evs_crc32_armv8_pmull(uint32_t crc, const unsigned char *p, size_t len)
{
    uint32_t c = ~crc;
    if (len >= PMULL_MIN) {
        const uint64x2_t k128 = KV(128), k256 = KV(256), k512 = KV(512), k1024 = KV(1024);
        uint64x2_t x0, x1, x2, x3, x4, x5, x6, x7;
        x0 = veorq_u64(LOADV(p), vcombine_u64(vcreate_u64(c), vcreate_u64(0)));
        x1 = LOADV(p + 16), x2 = LOADV(p + 32), x3 = LOADV(p + 48);
        x4 = LOADV(p + 64), x5 = LOADV(p + 80), x6 = LOADV(p + 96), x7 = LOADV(p + 112);
        p += 128;
        len -= 128;
        while (len >= 128) {
            x0 = FOLD_XOR(x0, k1024, LOADV(p));
            x1 = FOLD_XOR(x1, k1024, LOADV(p + 16));
            x2 = FOLD_XOR(x2, k1024, LOADV(p + 32));
            x3 = FOLD_XOR(x3, k1024, LOADV(p + 48));
            x4 = FOLD_XOR(x4, k1024, LOADV(p + 64));
            x5 = FOLD_XOR(x5, k1024, LOADV(p + 80));
            x6 = FOLD_XOR(x6, k1024, LOADV(p + 96));
            x7 = FOLD_XOR(x7, k1024, LOADV(p + 112));
            p += 128;
            len -= 128;
        }
        /* Ladder 8 -> 4 -> 2 -> 1, each rung taking at most one more chunk. */
        x0 = FOLD_XOR(x0, k512, x4);
        x1 = FOLD_XOR(x1, k512, x5);
        x2 = FOLD_XOR(x2, k512, x6);
        x3 = FOLD_XOR(x3, k512, x7);
        if (len >= 64) {
            x0 = FOLD_XOR(x0, k512, LOADV(p));
            x1 = FOLD_XOR(x1, k512, LOADV(p + 16));
            x2 = FOLD_XOR(x2, k512, LOADV(p + 32));
            x3 = FOLD_XOR(x3, k512, LOADV(p + 48));
            p += 64;
            len -= 64;
        }
        x0 = FOLD_XOR(x0, k256, x2);
        x1 = FOLD_XOR(x1, k256, x3);
        if (len >= 32) {
            x0 = FOLD_XOR(x0, k256, LOADV(p));
            x1 = FOLD_XOR(x1, k256, LOADV(p + 16));
            p += 32;
            len -= 32;
        }
        x0 = FOLD_XOR(x0, k128, x1);
        if (len >= 16) {
            x0 = FOLD_XOR(x0, k128, LOADV(p));
            p += 16;
            len -= 16;
        }
        /* The folded block's CRC with a zero register is the message's: two CRC32X replace Barrett. */
        c = CRC32D(CRC32D(0, vgetq_lane_u64(x0, 0)), vgetq_lane_u64(x0, 1));
    }
    return ~crc_chain(c, p, len);
}

#endif /* EVS_CRC32_HAVE_ARM_PMULL */

#else
typedef int evs_crc32_arm_unused; /* not ARM64: nothing here (ISO C forbids an empty file) */
#endif
