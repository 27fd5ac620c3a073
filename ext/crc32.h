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

#ifdef __cplusplus
}
#endif

#endif
