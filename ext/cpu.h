/* CPU feature detection for the CRC-32 dispatch (plain C, no Python API). */
#ifndef EVSTREAM_CPU_H
#define EVSTREAM_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

/* Feature bits; a bit is set only if the CPU has it AND the OS saves the registers it needs. */
#define EVS_CPU_X86_SSE41       (1u << 0)
#define EVS_CPU_X86_PCLMULQDQ   (1u << 1)
#define EVS_CPU_X86_AVX         (1u << 2)  /* AVX + OS saves ymm */
#define EVS_CPU_X86_AVX2        (1u << 3)
#define EVS_CPU_X86_VPCLMULQDQ  (1u << 4)
#define EVS_CPU_X86_AVX512F     (1u << 5)  /* + OS saves zmm and opmask state */
#define EVS_CPU_X86_AVX512BW    (1u << 6)
#define EVS_CPU_X86_AVX512VL    (1u << 7)
#define EVS_CPU_ARM_CRC32       (1u << 16)
#define EVS_CPU_ARM_PMULL       (1u << 17)

/* Detected once (the first call), then cached. Thread-safe in practice: racing first calls compute
 * the same value. */
unsigned evs_cpu_features(void);

#ifdef __cplusplus
}
#endif

#endif
