/* IEEE CRC-32 on x86 by carry-less multiplication folding (never the SSE4.2 crc32 instruction, which is
 * CRC-32C). Three tiers: PCLMULQDQ on xmm, VPCLMULQDQ on ymm (AVX2) and on zmm (AVX-512).
 *
 * Each function carries its own target attribute, so this file builds with default flags and the CPU is
 * checked at run time (crc32.c). Constants and lane conventions: gen_crc32_constants.py.
 *
 * Shape of every kernel: XOR the CRC into the first 4 bytes, keep N independent accumulators (N = 8:
 * enough multiplies in flight to saturate the one-per-two-cycles multiplier), then a ladder
 * 8 -> 4 -> 2 -> 1 accumulators where each rung may consume one more chunk, so every length takes at most
 * one step per rung and the reduction is log-depth. The last < 16 bytes are merged with a byte shuffle and
 * one more fold; the 128-bit remainder is reduced to 32 bits with three multiplies (Barrett).
 *
 * Past the caches the loops would wait on memory: each steady-state loop prefetches PREFETCH_AHEAD bytes
 * ahead, and the zmm tier starts its loop on a cache line (see there).
 *
 * The xmm and ymm loops are bound by the multiplier; on long inputs they run Chorba periods: of every
 * 6 + 32 xmm (8 + 32 ymm) blocks the first 6 (8) are not multiplied but XORed onto later blocks of the
 * period, which leaves the CRC unchanged because the XOR pattern is a multiple of P (gen_crc32_constants.py
 * derives it). The XORs run beside the multiplies, so 38 (40) blocks cost about what 32 did. The zmm loop folds every block: on Intel,
 * 512-bit XORs have two ports, one of them the multiplier's, and the trade was not measurable here.
 */
#include "crc32.h"
#include "crc32_constants.h"

#ifdef EVS_CRC32_HAVE_X86_PCLMUL

#include <immintrin.h>

#if defined(__GNUC__) || defined(__clang__)
#define EVS_TARGET(t) __attribute__((target(t)))
#define EVS_INLINE static inline __attribute__((always_inline))
/* Each kernel starts on a cache line, so its loops sit at the same offsets from line boundaries in every
 * build: the unrolled Chorba loop measured anywhere from -2 % to +14 % against the plain loop depending
 * on where the linker happened to put it, and consistently +5-14 % once aligned. */
#define EVS_KERNEL __attribute__((aligned(64)))
#else
#define EVS_TARGET(t)
#define EVS_INLINE static __forceinline
#define EVS_KERNEL
#endif

#define TARGET_PCLMUL "pclmul,sse4.1"
#define TARGET_AVX2 "vpclmulqdq,pclmul,avx2"
#ifdef EVS_CRC32_TARGET_AVX512 /* tests/c/avx512_emulated.c: the zmm kernel rebuilt for AVX2 machines */
#define TARGET_AVX512 EVS_CRC32_TARGET_AVX512
#else
#define TARGET_AVX512 "vpclmulqdq,pclmul,avx512f,avx512bw,avx512vl"
#endif

/* A pair of fold constants as one register: low lane multiplies the low lane of the data. */
#define K128(d) _mm_set_epi64x((long long)EVS_CRC32_FOLD_##d##_HI, (long long)EVS_CRC32_FOLD_##d##_LO)

/* Shuffle masks for the last partial block: 16 x 0x80 (pshufb writes zero), 0..15, 16 x 0x80. */
static const unsigned char shift_tab[48] = {
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
    0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    10,   11,   12,   13,   14,   15,
    0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
};

#define LOAD128(p) _mm_loadu_si128((const __m128i *)(const void *)(p))

/* How far ahead of the loads the steady-state loops ask for data: about what the loop consumes during one
 * memory latency (past the L2 every tier runs at the memory's pace, so one distance serves all; on Zen 3
 * 3-8 KiB measured alike, 16 MiB inputs +30-60 %; 1-2 KiB was too short). Issued only while that much
 * input remains, so no line past the buffer is requested and L1-sized inputs are unaffected. */
#define PREFETCH_AHEAD 4096
#define PREFETCH_LINE(p, off) _mm_prefetch((const char *)(p) + PREFETCH_AHEAD + (off), _MM_HINT_T0)
/* Four lines from off, spelled out: a loop of prefetches cost a mispredicted exit per period (-10 %). */
#define PREFETCH_4_LINES(p, off) \
    (PREFETCH_LINE(p, off), PREFETCH_LINE(p, (off) + 64), PREFETCH_LINE(p, (off) + 128), PREFETCH_LINE(p, (off) + 192))

/* Chorba periods: block b of the folded part is first XORed with the skipped blocks of the mask
 * chorba_sources_xmm/ymm[b] (a constant wherever the period is unrolled). */
#if EVS_CRC32_CHORBA_SKIP_128 != 6 || EVS_CRC32_CHORBA_SKIP_256 != 8 || EVS_CRC32_CHORBA_BLOCKS != 32
#error "the Chorba prefetch lists below are written for periods of 6 + 32 xmm and 8 + 32 ymm blocks"
#endif
#define CHORBA_SKIP_XMM EVS_CRC32_CHORBA_SKIP_128
#define CHORBA_SKIP_YMM EVS_CRC32_CHORBA_SKIP_256
#define CHORBA_PERIOD_XMM (16 * (CHORBA_SKIP_XMM + EVS_CRC32_CHORBA_BLOCKS)) /* bytes */
#define CHORBA_PERIOD_YMM (32 * (CHORBA_SKIP_YMM + EVS_CRC32_CHORBA_BLOCKS))
static const unsigned short chorba_sources_xmm[EVS_CRC32_CHORBA_BLOCKS] = EVS_CRC32_CHORBA_SOURCES_128;
static const unsigned short chorba_sources_ymm[EVS_CRC32_CHORBA_BLOCKS] = EVS_CRC32_CHORBA_SOURCES_256;

/* ---- 128-bit building blocks (inlined into every tier; VEX-encoded inside the AVX ones) ---- */

/* x carried forward over the distance k was made for. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) __m128i fold128(__m128i x, __m128i k)
{
    return _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11));
}

/* x covers the bytes just before `end - r` (at least 16 of them precede `end - r`); append the r = 1..15
 * bytes ending at `end`: split the 16 + r bytes into [zeros, first r bytes of x] and [rest of x, tail]. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) __m128i fold_partial(__m128i x, const unsigned char *end, size_t r,
                                                          __m128i k128)
{
    __m128i lmask = LOAD128(shift_tab + r);      /* byte i <- x[i - (16 - r)], or zero */
    __m128i rmask = LOAD128(shift_tab + 16 + r); /* byte i <- x[i + r]; high bit set where the tail goes */
    __m128i head = _mm_shuffle_epi8(x, lmask);
    __m128i rest = _mm_blendv_epi8(_mm_shuffle_epi8(x, rmask), LOAD128(end - 16), rmask);
    return _mm_xor_si128(fold128(head, k128), rest);
}

/* x (the message folded into 128 bits) -> CRC register: x*x^32 mod P. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) uint32_t reduce128(__m128i x)
{
    const __m128i k = _mm_set_epi64x((long long)EVS_CRC32_BARRETT_MU, (long long)EVS_CRC32_FINAL_MULT);
    const __m128i p = _mm_set_epi64x(0, (long long)EVS_CRC32_BARRETT_P);
    /* y = x*x^64 with the low 32 bits of the polynomial known to be zero: the CRC is dword 2 after
     * subtracting q*P, q = floor(y / (P*x^32)) from the top 64 bits times floor(x^95 / P). */
    __m128i y = _mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_srli_si128(x, 8));
    __m128i q = _mm_clmulepi64_si128(y, k, 0x10);
    __m128i r = _mm_xor_si128(y, _mm_clmulepi64_si128(q, p, 0x00));
    return (uint32_t)_mm_extract_epi32(r, 2);
}

/* Finish from one 128-bit accumulator: whole blocks, then the partial one, then reduce. `x` already
 * covers at least 16 bytes before p. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) uint32_t finish128(__m128i x, const unsigned char *p, size_t len)
{
    const __m128i k128 = K128(128);
    while (len >= 16) {
        x = _mm_xor_si128(fold128(x, k128), LOAD128(p));
        p += 16;
        len -= 16;
    }
    if (len)
        x = fold_partial(x, p + len, len, k128);
    return ~reduce128(x);
}

/* Folded block b of the xmm Chorba period at p, with its skipped blocks XORed in. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) __m128i chorba_block128(const unsigned char *p, int b)
{
    const unsigned m = chorba_sources_xmm[b];
    __m128i d = LOAD128(p + 16 * (CHORBA_SKIP_XMM + b));
    int j;
    for (j = 0; j < CHORBA_SKIP_XMM; j++) /* unrolled: m and j are constants */
        if (m >> j & 1)
            d = _mm_xor_si128(d, LOAD128(p + 16 * j));
    return d;
}

/* One round of a period: the 8 accumulators onto folded blocks 8r..8r+7 (spelled out, so that every
 * block's mask is a constant). */
#define CHORBA_ROUND_XMM(r, k)                                                   \
    do {                                                                         \
        x0 = _mm_xor_si128(fold128(x0, k), chorba_block128(p, 8 * (r)));         \
        x1 = _mm_xor_si128(fold128(x1, k), chorba_block128(p, 8 * (r) + 1));     \
        x2 = _mm_xor_si128(fold128(x2, k), chorba_block128(p, 8 * (r) + 2));     \
        x3 = _mm_xor_si128(fold128(x3, k), chorba_block128(p, 8 * (r) + 3));     \
        x4 = _mm_xor_si128(fold128(x4, k), chorba_block128(p, 8 * (r) + 4));     \
        x5 = _mm_xor_si128(fold128(x5, k), chorba_block128(p, 8 * (r) + 5));     \
        x6 = _mm_xor_si128(fold128(x6, k), chorba_block128(p, 8 * (r) + 6));     \
        x7 = _mm_xor_si128(fold128(x7, k), chorba_block128(p, 8 * (r) + 7));     \
    } while (0)

/* The xmm kernel, len >= 16; also the small-input path of the wider tiers. */
EVS_INLINE EVS_TARGET(TARGET_PCLMUL) uint32_t crc_xmm(uint32_t crc, const unsigned char *p, size_t len)
{
    const __m128i k128 = K128(128), k256 = K128(256), k512 = K128(512);
    const __m128i init = _mm_cvtsi32_si128((int)~crc);
    __m128i x;
    if (len >= 64) {
        __m128i x0, x1, x2, x3;
        if (len >= 128) {
            const __m128i k1024 = K128(1024);
            __m128i x4, x5, x6, x7;
            x0 = _mm_xor_si128(LOAD128(p), init);
            x1 = LOAD128(p + 16), x2 = LOAD128(p + 32), x3 = LOAD128(p + 48);
            x4 = LOAD128(p + 64), x5 = LOAD128(p + 80), x6 = LOAD128(p + 96), x7 = LOAD128(p + 112);
            p += 128;
            len -= 128;
            /* Chorba periods; the first round carries the accumulators over the skipped blocks. */
            while (len >= CHORBA_PERIOD_XMM) { /* 608 bytes: 10 lines */
                const __m128i kskip = K128(CHORBA_128);
                if (len >= CHORBA_PERIOD_XMM + PREFETCH_AHEAD) {
                    PREFETCH_4_LINES(p, 0);
                    PREFETCH_4_LINES(p, 256);
                    PREFETCH_LINE(p, 512);
                    PREFETCH_LINE(p, 576);
                }
                CHORBA_ROUND_XMM(0, kskip);
                CHORBA_ROUND_XMM(1, k1024);
                CHORBA_ROUND_XMM(2, k1024);
                CHORBA_ROUND_XMM(3, k1024);
                p += CHORBA_PERIOD_XMM;
                len -= CHORBA_PERIOD_XMM;
            }
            while (len >= 128) {
                if (len >= 128 + PREFETCH_AHEAD) {
                    PREFETCH_LINE(p, 0);
                    PREFETCH_LINE(p, 64);
                }
                x0 = _mm_xor_si128(fold128(x0, k1024), LOAD128(p));
                x1 = _mm_xor_si128(fold128(x1, k1024), LOAD128(p + 16));
                x2 = _mm_xor_si128(fold128(x2, k1024), LOAD128(p + 32));
                x3 = _mm_xor_si128(fold128(x3, k1024), LOAD128(p + 48));
                x4 = _mm_xor_si128(fold128(x4, k1024), LOAD128(p + 64));
                x5 = _mm_xor_si128(fold128(x5, k1024), LOAD128(p + 80));
                x6 = _mm_xor_si128(fold128(x6, k1024), LOAD128(p + 96));
                x7 = _mm_xor_si128(fold128(x7, k1024), LOAD128(p + 112));
                p += 128;
                len -= 128;
            }
            x0 = _mm_xor_si128(fold128(x0, k512), x4);
            x1 = _mm_xor_si128(fold128(x1, k512), x5);
            x2 = _mm_xor_si128(fold128(x2, k512), x6);
            x3 = _mm_xor_si128(fold128(x3, k512), x7);
            if (len >= 64) {
                x0 = _mm_xor_si128(fold128(x0, k512), LOAD128(p));
                x1 = _mm_xor_si128(fold128(x1, k512), LOAD128(p + 16));
                x2 = _mm_xor_si128(fold128(x2, k512), LOAD128(p + 32));
                x3 = _mm_xor_si128(fold128(x3, k512), LOAD128(p + 48));
                p += 64;
                len -= 64;
            }
        } else {
            x0 = _mm_xor_si128(LOAD128(p), init);
            x1 = LOAD128(p + 16), x2 = LOAD128(p + 32), x3 = LOAD128(p + 48);
            p += 64;
            len -= 64;
        }
        x0 = _mm_xor_si128(fold128(x0, k256), x2);
        x1 = _mm_xor_si128(fold128(x1, k256), x3);
        if (len >= 32) {
            x0 = _mm_xor_si128(fold128(x0, k256), LOAD128(p));
            x1 = _mm_xor_si128(fold128(x1, k256), LOAD128(p + 16));
            p += 32;
            len -= 32;
        }
        x = _mm_xor_si128(fold128(x0, k128), x1);
    } else if (len >= 32) {
        x = _mm_xor_si128(fold128(_mm_xor_si128(LOAD128(p), init), k128), LOAD128(p + 16));
        p += 32;
        len -= 32;
    } else {
        x = _mm_xor_si128(LOAD128(p), init);
        p += 16;
        len -= 16;
    }
    return finish128(x, p, len);
}

/* Below this the table wins (measured): a fold plus the 3-multiply reduction cost about as much as
 * one or two rounds of 16 table lookups. */
#define XMM_MIN 32

EVS_KERNEL EVS_TARGET(TARGET_PCLMUL) uint32_t evs_crc32_pclmul(uint32_t crc, const unsigned char *p, size_t len)
{
    if (len < XMM_MIN)
        return evs_crc32_software(crc, p, len);
    return crc_xmm(crc, p, len);
}

/* ---- VPCLMULQDQ on ymm (AVX2): two 128-bit lanes per register ---- */

#ifdef EVS_CRC32_HAVE_X86_VPCLMUL_AVX2

#define K256(d) _mm256_broadcastsi128_si256(K128(d))
#define LOAD256(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

EVS_INLINE EVS_TARGET(TARGET_AVX2) __m256i fold256(__m256i x, __m256i k, __m256i data)
{
    return _mm256_xor_si256(_mm256_xor_si256(_mm256_clmulepi64_epi128(x, k, 0x00),
                                             _mm256_clmulepi64_epi128(x, k, 0x11)),
                            data);
}

/* Fold the two lanes of y into one: lane 0 forward over 128 bits onto lane 1. */
EVS_INLINE EVS_TARGET(TARGET_AVX2) __m128i ymm_to_xmm(__m256i y)
{
    return _mm_xor_si128(fold128(_mm256_castsi256_si128(y), K128(128)), _mm256_extracti128_si256(y, 1));
}

#define YMM_MIN 128 /* below: the xmm kernel, whose ladder is as short */

/* Folded block b of the ymm Chorba period at p (32-byte blocks: the same pattern, squared). */
EVS_INLINE EVS_TARGET(TARGET_AVX2) __m256i chorba_block256(const unsigned char *p, int b)
{
    const unsigned m = chorba_sources_ymm[b];
    __m256i d = LOAD256(p + 32 * (CHORBA_SKIP_YMM + b));
    int j;
    for (j = 0; j < CHORBA_SKIP_YMM; j++) /* unrolled: m and j are constants */
        if (m >> j & 1)
            d = _mm256_xor_si256(d, LOAD256(p + 32 * j));
    return d;
}

#define CHORBA_ROUND_YMM(r, k)                                   \
    do {                                                         \
        y0 = fold256(y0, k, chorba_block256(p, 8 * (r)));        \
        y1 = fold256(y1, k, chorba_block256(p, 8 * (r) + 1));    \
        y2 = fold256(y2, k, chorba_block256(p, 8 * (r) + 2));    \
        y3 = fold256(y3, k, chorba_block256(p, 8 * (r) + 3));    \
        y4 = fold256(y4, k, chorba_block256(p, 8 * (r) + 4));    \
        y5 = fold256(y5, k, chorba_block256(p, 8 * (r) + 5));    \
        y6 = fold256(y6, k, chorba_block256(p, 8 * (r) + 6));    \
        y7 = fold256(y7, k, chorba_block256(p, 8 * (r) + 7));    \
    } while (0)

/* The ymm kernel, len >= 128; also the mid-size path of the AVX-512 tier. */
EVS_INLINE EVS_TARGET(TARGET_AVX2) uint32_t crc_ymm(uint32_t crc, const unsigned char *p, size_t len)
{
    __m256i y;
    {
        const __m256i init = _mm256_zextsi128_si256(_mm_cvtsi32_si128((int)~crc));
        const __m256i k256 = K256(256), k512 = K256(512), k1024 = K256(1024);
        __m256i y0, y1;
        if (len >= 128) {
            __m256i y2, y3;
            if (len >= 256) {
                const __m256i k2048 = K256(2048);
                __m256i y4, y5, y6, y7;
                y0 = _mm256_xor_si256(LOAD256(p), init);
                y1 = LOAD256(p + 32), y2 = LOAD256(p + 64), y3 = LOAD256(p + 96);
                y4 = LOAD256(p + 128), y5 = LOAD256(p + 160), y6 = LOAD256(p + 192), y7 = LOAD256(p + 224);
                p += 256;
                len -= 256;
                while (len >= CHORBA_PERIOD_YMM) { /* 1280 bytes: 20 lines */
                    const __m256i kskip = K256(CHORBA_256);
                    if (len >= CHORBA_PERIOD_YMM + PREFETCH_AHEAD) {
                        PREFETCH_4_LINES(p, 0);
                        PREFETCH_4_LINES(p, 256);
                        PREFETCH_4_LINES(p, 512);
                        PREFETCH_4_LINES(p, 768);
                        PREFETCH_4_LINES(p, 1024);
                    }
                    CHORBA_ROUND_YMM(0, kskip);
                    CHORBA_ROUND_YMM(1, k2048);
                    CHORBA_ROUND_YMM(2, k2048);
                    CHORBA_ROUND_YMM(3, k2048);
                    p += CHORBA_PERIOD_YMM;
                    len -= CHORBA_PERIOD_YMM;
                }
                while (len >= 256) {
                    if (len >= 256 + PREFETCH_AHEAD) {
                        PREFETCH_LINE(p, 0);
                        PREFETCH_LINE(p, 64);
                        PREFETCH_LINE(p, 128);
                        PREFETCH_LINE(p, 192);
                    }
                    y0 = fold256(y0, k2048, LOAD256(p));
                    y1 = fold256(y1, k2048, LOAD256(p + 32));
                    y2 = fold256(y2, k2048, LOAD256(p + 64));
                    y3 = fold256(y3, k2048, LOAD256(p + 96));
                    y4 = fold256(y4, k2048, LOAD256(p + 128));
                    y5 = fold256(y5, k2048, LOAD256(p + 160));
                    y6 = fold256(y6, k2048, LOAD256(p + 192));
                    y7 = fold256(y7, k2048, LOAD256(p + 224));
                    p += 256;
                    len -= 256;
                }
                y0 = fold256(y0, k1024, y4);
                y1 = fold256(y1, k1024, y5);
                y2 = fold256(y2, k1024, y6);
                y3 = fold256(y3, k1024, y7);
                if (len >= 128) {
                    y0 = fold256(y0, k1024, LOAD256(p));
                    y1 = fold256(y1, k1024, LOAD256(p + 32));
                    y2 = fold256(y2, k1024, LOAD256(p + 64));
                    y3 = fold256(y3, k1024, LOAD256(p + 96));
                    p += 128;
                    len -= 128;
                }
            } else {
                y0 = _mm256_xor_si256(LOAD256(p), init);
                y1 = LOAD256(p + 32), y2 = LOAD256(p + 64), y3 = LOAD256(p + 96);
                p += 128;
                len -= 128;
            }
            y0 = fold256(y0, k512, y2);
            y1 = fold256(y1, k512, y3);
        } else {
            y0 = _mm256_xor_si256(LOAD256(p), init); /* unreachable with YMM_MIN = 128; kept for tuning */
            y1 = LOAD256(p + 32);
            p += 64;
            len -= 64;
        }
        if (len >= 64) {
            y0 = fold256(y0, k512, LOAD256(p));
            y1 = fold256(y1, k512, LOAD256(p + 32));
            p += 64;
            len -= 64;
        }
        y = fold256(y0, k256, y1);
        if (len >= 32) {
            y = fold256(y, k256, LOAD256(p));
            p += 32;
            len -= 32;
        }
    }
    return finish128(ymm_to_xmm(y), p, len);
}

EVS_KERNEL EVS_TARGET(TARGET_AVX2) uint32_t evs_crc32_vpclmul_avx2(uint32_t crc, const unsigned char *p, size_t len)
{
    if (len < YMM_MIN)
        return len < XMM_MIN ? evs_crc32_software(crc, p, len) : crc_xmm(crc, p, len);
    return crc_ymm(crc, p, len);
}

#endif /* EVS_CRC32_HAVE_X86_VPCLMUL_AVX2 */

/* ---- VPCLMULQDQ on zmm (AVX-512): four 128-bit lanes per register ---- */

#ifdef EVS_CRC32_HAVE_X86_VPCLMUL_AVX512

#define K512(d) _mm512_broadcast_i32x4(K128(d))
#define LOAD512(p) _mm512_loadu_si512((const void *)(p))

/* One instruction for the three-way XOR (0x96 = a ^ b ^ c). */
EVS_INLINE EVS_TARGET(TARGET_AVX512) __m512i fold512(__m512i x, __m512i k, __m512i data)
{
    return _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11),
                                     data, 0x96);
}

#define KP(d) EVS_CRC32_FOLD_##d##_LO, EVS_CRC32_FOLD_##d##_HI

/* Finishing a zmm accumulator z followed by m = 0..3 whole blocks b_0..b_{m-1} in ONE multiply level
 * instead of a chain of up to five folds: lane i of z is carried over (3 + m - i) blocks and b_j over
 * (m - 1 - j), all at once; the lanes are then XORed together, plus the one block that needs no carry
 * (z's lane 3 when m = 0, else b_{m-1}). A zero constant makes a lane's product zero. */
static const uint64_t zmm_tail_k[4][8] = {
    {KP(384), KP(256), KP(128), 0, 0},
    {KP(512), KP(384), KP(256), KP(128)},
    {KP(640), KP(512), KP(384), KP(256)},
    {KP(768), KP(640), KP(512), KP(384)},
};
static const uint64_t blk_tail_k[4][8] = {
    {0},
    {0},
    {KP(128), 0, 0, 0, 0, 0, 0},
    {KP(256), KP(128), 0, 0, 0, 0},
};

EVS_INLINE EVS_TARGET(TARGET_AVX512) __m512i clmul_both(__m512i x, __m512i k)
{
    return _mm512_xor_si512(_mm512_clmulepi64_epi128(x, k, 0x00), _mm512_clmulepi64_epi128(x, k, 0x11));
}

/* z covers the bytes before p (at least 64 of them); len < 64 bytes remain. Returns the CRC. */
EVS_INLINE EVS_TARGET(TARGET_AVX512) uint32_t finish512(__m512i z, const unsigned char *p, size_t len)
{
    size_t m = len / 16, r = len % 16;
    __m512i y = clmul_both(z, _mm512_loadu_si512((const void *)zmm_tail_k[m]));
    __m256i h;
    __m128i x, raw;
    if (m == 0) {
        raw = _mm512_extracti32x4_epi32(z, 3);
    } else {
        /* blocks b_0..b_{m-2}; the masked-off lanes are not read (no fault past the buffer) */
        __m512i b = _mm512_maskz_loadu_epi64((__mmask8)((1u << (2 * (m - 1))) - 1), (const void *)p);
        y = _mm512_xor_si512(y, clmul_both(b, _mm512_loadu_si512((const void *)blk_tail_k[m])));
        raw = LOAD128(p + 16 * (m - 1));
    }
    h = _mm256_xor_si256(_mm512_castsi512_si256(y), _mm512_extracti64x4_epi64(y, 1));
    x = _mm_ternarylogic_epi64(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1), raw, 0x96);
    if (r)
        x = fold_partial(x, p + len, r, K128(128));
    return ~reduce128(x);
}

/* Below: the ymm/xmm kernels (measured on Zen 4: zmm multiplies have the longer latency, which the
 * ladder pays once per rung, so zmm only wins from 512 B). */
#define ZMM_MIN 512

/* From this size the zmm loop starts on a cache line. A zmm load at any other offset straddles two lines,
 * so every load needs two L1 accesses and, once the data comes from L2 or beyond, two lines to arrive
 * (Intel's optimization manual asks for 64-byte alignment of 512-bit data for this reason; a Python bytes
 * object's data is 64-byte aligned only by chance). The 32-95-byte head costs one short xmm call, so only
 * inputs that leave the L1 pay it. */
#define ZMM_ALIGN_MIN (32 * 1024)

/* Two accumulators a (earlier) and b carried over ka and kb onto a new chunk: one multiply level. */
EVS_INLINE EVS_TARGET(TARGET_AVX512) __m512i fold2_512(__m512i a, __m512i ka, __m512i b, __m512i kb, __m512i data)
{
    return _mm512_ternarylogic_epi64(clmul_both(a, ka), clmul_both(b, kb), data, 0x96);
}

EVS_KERNEL EVS_TARGET(TARGET_AVX512) uint32_t evs_crc32_vpclmul_avx512(uint32_t crc, const unsigned char *p, size_t len)
{
    const __m512i k512 = K512(512), k1024 = K512(1024), k2048 = K512(2048), k4096 = K512(4096);
    __m512i z0, z1, z2, z3, z4, z5, z6, z7;
    if (len < ZMM_MIN) {
#ifdef EVS_CRC32_HAVE_X86_VPCLMUL_AVX2
        if (len >= YMM_MIN)
            return crc_ymm(crc, p, len);
#endif
        return len < XMM_MIN ? evs_crc32_software(crc, p, len) : crc_xmm(crc, p, len);
    }
    if (len >= ZMM_ALIGN_MIN && ((uintptr_t)p & 63)) {
        size_t head = 64 - (size_t)((uintptr_t)p & 63);
        if (head < XMM_MIN)
            head += 64;
        crc = crc_xmm(crc, p, head);
        p += head;
        len -= head;
    }
    z0 = _mm512_xor_si512(LOAD512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)~crc)));
    z1 = LOAD512(p + 64), z2 = LOAD512(p + 128), z3 = LOAD512(p + 192);
    z4 = LOAD512(p + 256), z5 = LOAD512(p + 320), z6 = LOAD512(p + 384), z7 = LOAD512(p + 448);
    p += 512;
    len -= 512;
    while (len >= 512) {
        if (len >= 512 + PREFETCH_AHEAD) {
            PREFETCH_LINE(p, 0);
            PREFETCH_LINE(p, 64);
            PREFETCH_LINE(p, 128);
            PREFETCH_LINE(p, 192);
            PREFETCH_LINE(p, 256);
            PREFETCH_LINE(p, 320);
            PREFETCH_LINE(p, 384);
            PREFETCH_LINE(p, 448);
        }
        z0 = fold512(z0, k4096, LOAD512(p));
        z1 = fold512(z1, k4096, LOAD512(p + 64));
        z2 = fold512(z2, k4096, LOAD512(p + 128));
        z3 = fold512(z3, k4096, LOAD512(p + 192));
        z4 = fold512(z4, k4096, LOAD512(p + 256));
        z5 = fold512(z5, k4096, LOAD512(p + 320));
        z6 = fold512(z6, k4096, LOAD512(p + 384));
        z7 = fold512(z7, k4096, LOAD512(p + 448));
        p += 512;
        len -= 512;
    }
    /* Ladder 8 -> 4 -> 2 -> 1. A rung that also takes a chunk carries both halves straight onto it
     * (one multiply level, not two: mid sizes are latency-bound). */
    if (len >= 256) {
        z0 = fold2_512(z0, k4096, z4, k2048, LOAD512(p));
        z1 = fold2_512(z1, k4096, z5, k2048, LOAD512(p + 64));
        z2 = fold2_512(z2, k4096, z6, k2048, LOAD512(p + 128));
        z3 = fold2_512(z3, k4096, z7, k2048, LOAD512(p + 192));
        p += 256;
        len -= 256;
    } else {
        z0 = fold512(z0, k2048, z4);
        z1 = fold512(z1, k2048, z5);
        z2 = fold512(z2, k2048, z6);
        z3 = fold512(z3, k2048, z7);
    }
    if (len >= 128) {
        z0 = fold2_512(z0, k2048, z2, k1024, LOAD512(p));
        z1 = fold2_512(z1, k2048, z3, k1024, LOAD512(p + 64));
        p += 128;
        len -= 128;
    } else {
        z0 = fold512(z0, k1024, z2);
        z1 = fold512(z1, k1024, z3);
    }
    if (len >= 64) {
        z0 = fold2_512(z0, k1024, z1, k512, LOAD512(p));
        p += 64;
        len -= 64;
    } else {
        z0 = fold512(z0, k512, z1);
    }
    return finish512(z0, p, len);
}

#endif /* EVS_CRC32_HAVE_X86_VPCLMUL_AVX512 */

#else
/* Not x86, or a compiler without the intrinsics: nothing here (ISO C forbids an empty file). */
typedef int evs_crc32_x86_unused;
#endif
