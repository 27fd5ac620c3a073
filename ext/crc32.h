/* IEEE CRC-32 (the zlib / event stream polynomial, reflected 0xEDB88320) with runtime CPU dispatch.
 *
 * Plain C, no Python API. Every function has zlib's crc32() semantics: pass the previous CRC (0 to
 * start) and get the CRC of the concatenation; the pre/post inversion is done inside.
 */
#ifndef EVSTREAM_CRC32_H
#define EVSTREAM_CRC32_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t (*evs_crc32_fn)(uint32_t crc, const unsigned char *buf, size_t len);

/* The kernel chosen by evs_crc32_init(); the table kernel until then. */
extern evs_crc32_fn evs_crc32;

/* Detect the CPU once and choose the fastest kernel it supports. `forced` may be NULL or "" (no
 * preference) or a tier name; a forced tier is clamped to the best tier the CPU has at or below it.
 * Returns 0, or -1 if `forced` is not a known tier name (the previous choice is kept). */
int evs_crc32_init(const char *forced);

/* Name of the kernel in use: "software", "pclmulqdq", "vpclmulqdq-avx2", "vpclmulqdq-avx512",
 * "armv8-crc", "armv8-crc-pmull". */
const char *evs_crc32_backend(void);

/* Every tier this build knows, in order of speed (software first); for tests and benchmarks. */
int evs_crc32_tier_count(void);
const char *evs_crc32_tier_name(int i);
int evs_crc32_tier_available(int i);   /* compiled in and supported by this CPU */
evs_crc32_fn evs_crc32_tier_fn(int i); /* NULL if not available */

/* Slice-by-N table kernel; always available and the fastest below ~16 bytes. */
uint32_t evs_crc32_software(uint32_t crc, const unsigned char *buf, size_t len);

/* ---- Implementation detail (added by the kernel files; not part of the binding's contract) ----
 * Which kernels this compiler can build; the CPU is checked at run time by evs_crc32_init(). */
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#  if defined(__clang__)
#    define EVS_CRC32_HAVE_X86_PCLMUL 1
#    if __clang_major__ >= 8
#      define EVS_CRC32_HAVE_X86_VPCLMUL_AVX2 1
#      define EVS_CRC32_HAVE_X86_VPCLMUL_AVX512 1
#    endif
#  elif defined(__GNUC__)
#    if __GNUC__ > 4 || (__GNUC__ == 4 && __GNUC_MINOR__ >= 9)
#      define EVS_CRC32_HAVE_X86_PCLMUL 1
#    endif
#    if __GNUC__ >= 10 /* VPCLMULQDQ (8) and the zero-extending casts (10) */
#      define EVS_CRC32_HAVE_X86_VPCLMUL_AVX2 1
#      define EVS_CRC32_HAVE_X86_VPCLMUL_AVX512 1
#    endif
#  elif defined(_MSC_VER)
#    define EVS_CRC32_HAVE_X86_PCLMUL 1
#    if _MSC_VER >= 1920 /* no AVX2 tier: MSVC's 256-bit VPCLMULQDQ intrinsics are unreliable */
#      define EVS_CRC32_HAVE_X86_VPCLMUL_AVX512 1
#    endif
#  endif
#elif defined(__aarch64__) || defined(_M_ARM64)
#  if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8) || defined(_MSC_VER)
#    define EVS_CRC32_HAVE_ARM_CRC 1
#    define EVS_CRC32_HAVE_ARM_PMULL 1
#  endif
#endif

/* The kernels behind the tiers; call one only if evs_crc32_tier_available() says so. */
uint32_t evs_crc32_pclmul(uint32_t crc, const unsigned char *buf, size_t len);
uint32_t evs_crc32_vpclmul_avx2(uint32_t crc, const unsigned char *buf, size_t len);
uint32_t evs_crc32_vpclmul_avx512(uint32_t crc, const unsigned char *buf, size_t len);
uint32_t evs_crc32_armv8(uint32_t crc, const unsigned char *buf, size_t len);
uint32_t evs_crc32_armv8_pmull(uint32_t crc, const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
