/* The zmm (AVX-512) CRC kernel rebuilt for CPUs without AVX-512, so that its logic (the 8 -> 1 ladder,
 * the one-level tail tables, the cache-line alignment head, the prefetch bounds) is tested on every x86
 * machine with AVX2 + VPCLMULQDQ, not only where AVX-512 happens to exist.
 *
 * ext/crc32_x86.c is compiled again here with each AVX-512 intrinsic it uses replaced by the same
 * operation on four 128-bit lanes, and its zmm target attribute lowered to the AVX2 one. The result is
 * exported as evs_test_crc32_avx512_emulated(); tests/c/test_crc32.c sweeps it like a tier when built
 * with -DEVS_TEST_EXTRA_KERNEL (see tests/test_crc32_native.py). The other kernels of the file are renamed
 * away so they do not clash with the real ones.
 */
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define EMU_TARGET "vpclmulqdq,pclmul,avx2"
#define EMU static inline __attribute__((always_inline, target(EMU_TARGET)))

typedef struct {
    __m128i lane[4];
} emu512;

EMU emu512 emu_loadu(const void *p)
{
    emu512 r;
    memcpy(r.lane, p, sizeof(r.lane));
    return r;
}

EMU emu512 emu_xor(emu512 a, emu512 b)
{
    int i;
    for (i = 0; i < 4; i++)
        a.lane[i] = _mm_xor_si128(a.lane[i], b.lane[i]);
    return a;
}

/* Only the three-way XOR is used by the kernel; anything else would be a new use to emulate. */
EMU emu512 emu_ternarylogic(emu512 a, emu512 b, emu512 c, int imm)
{
    if (imm != 0x96)
        abort();
    return emu_xor(emu_xor(a, b), c);
}

EMU __m128i emu_ternarylogic128(__m128i a, __m128i b, __m128i c, int imm)
{
    if (imm != 0x96)
        abort();
    return _mm_xor_si128(_mm_xor_si128(a, b), c);
}

EMU emu512 emu_broadcast(__m128i x)
{
    emu512 r;
    r.lane[0] = r.lane[1] = r.lane[2] = r.lane[3] = x;
    return r;
}

EMU emu512 emu_zext(__m128i x)
{
    emu512 r;
    r.lane[0] = x;
    r.lane[1] = r.lane[2] = r.lane[3] = _mm_setzero_si128();
    return r;
}

EMU __m128i emu_clmul_lane(__m128i a, __m128i b, int imm)
{
    switch (imm) {
    case 0x00: return _mm_clmulepi64_si128(a, b, 0x00);
    case 0x01: return _mm_clmulepi64_si128(a, b, 0x01);
    case 0x10: return _mm_clmulepi64_si128(a, b, 0x10);
    default: return _mm_clmulepi64_si128(a, b, 0x11);
    }
}

EMU emu512 emu_clmul(emu512 a, emu512 b, int imm)
{
    int i;
    for (i = 0; i < 4; i++)
        a.lane[i] = emu_clmul_lane(a.lane[i], b.lane[i], imm);
    return a;
}

/* Masked-off quadwords are zero and, as on the hardware, never read. */
EMU emu512 emu_maskz_loadu_epi64(__mmask8 mask, const void *p)
{
    uint64_t q[8];
    emu512 r;
    int i;
    for (i = 0; i < 8; i++) {
        q[i] = 0;
        if (mask >> i & 1)
            memcpy(&q[i], (const unsigned char *)p + 8 * i, 8);
    }
    memcpy(r.lane, q, sizeof(q));
    return r;
}

EMU __m128i emu_extract128(emu512 a, int i) { return a.lane[i & 3]; }

EMU __m256i emu_extract256(emu512 a, int i) { return _mm256_set_m128i(a.lane[2 * (i & 1) + 1], a.lane[2 * (i & 1)]); }

EMU __m256i emu_cast256(emu512 a) { return _mm256_set_m128i(a.lane[1], a.lane[0]); }

/* Some of these are macros in the compiler's headers (unoptimised builds): replace them either way. */
#undef _mm512_loadu_si512
#undef _mm512_xor_si512
#undef _mm512_ternarylogic_epi64
#undef _mm_ternarylogic_epi64
#undef _mm512_broadcast_i32x4
#undef _mm512_zextsi128_si512
#undef _mm512_clmulepi64_epi128
#undef _mm512_maskz_loadu_epi64
#undef _mm512_extracti32x4_epi32
#undef _mm512_extracti64x4_epi64
#undef _mm512_castsi512_si256
#define __m512i emu512
#define _mm512_loadu_si512 emu_loadu
#define _mm512_xor_si512 emu_xor
#define _mm512_ternarylogic_epi64 emu_ternarylogic
#define _mm_ternarylogic_epi64 emu_ternarylogic128
#define _mm512_broadcast_i32x4 emu_broadcast
#define _mm512_zextsi128_si512 emu_zext
#define _mm512_clmulepi64_epi128 emu_clmul
#define _mm512_maskz_loadu_epi64 emu_maskz_loadu_epi64
#define _mm512_extracti32x4_epi32 emu_extract128
#define _mm512_extracti64x4_epi64 emu_extract256
#define _mm512_castsi512_si256 emu_cast256

#define EVS_CRC32_TARGET_AVX512 EMU_TARGET
#define evs_crc32_vpclmul_avx512 evs_test_crc32_avx512_emulated
#define evs_crc32_vpclmul_avx2 evs_test_crc32_avx2_copy
#define evs_crc32_pclmul evs_test_crc32_pclmul_copy

#include "crc32_x86.c"

#else
typedef int evs_test_avx512_emulated_unused; /* not x86-64 with GCC or clang: nothing to emulate */
#endif
