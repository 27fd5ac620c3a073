/* CPU feature detection: x86 cpuid/xgetbv, aarch64 Linux/macOS/Windows. */
#include "cpu.h"

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#define EVS_X86 1
#elif defined(__aarch64__) || defined(_M_ARM64)
#define EVS_ARM64 1
#endif

#if defined(EVS_X86)
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
static void evs_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    r[0] = (unsigned)v[0]; r[1] = (unsigned)v[1]; r[2] = (unsigned)v[2]; r[3] = (unsigned)v[3];
}
static unsigned long long evs_xgetbv(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void evs_cpuid(unsigned leaf, unsigned sub, unsigned r[4])
{
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
/* Raw encoding of xgetbv: no -mxsave needed for this file. */
static unsigned long long evs_xgetbv(void)
{
    unsigned lo, hi;
    __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

static unsigned evs_detect(void)
{
    unsigned r[4], f = 0, max_leaf;
    unsigned long long xcr0 = 0;
    evs_cpuid(0, 0, r);
    max_leaf = r[0];
    if (max_leaf < 1)
        return 0;
    evs_cpuid(1, 0, r);
    if (r[2] & (1u << 19)) f |= EVS_CPU_X86_SSE41;
    if (r[2] & (1u << 1)) f |= EVS_CPU_X86_PCLMULQDQ;
    /* OSXSAVE (bit 27) must be set before xgetbv may run. */
    if (r[2] & (1u << 27)) {
        xcr0 = evs_xgetbv();
        if ((r[2] & (1u << 28)) && (xcr0 & 0x6) == 0x6) f |= EVS_CPU_X86_AVX;
    }
    if (max_leaf >= 7 && (f & EVS_CPU_X86_AVX)) {
        evs_cpuid(7, 0, r);
        if (r[1] & (1u << 5)) f |= EVS_CPU_X86_AVX2;
        if (r[2] & (1u << 10)) f |= EVS_CPU_X86_VPCLMULQDQ;
        /* zmm needs opmask + ZMM_Hi256 + Hi16_ZMM state saved too. */
        if ((xcr0 & 0xE6) == 0xE6) {
            if (r[1] & (1u << 16)) f |= EVS_CPU_X86_AVX512F;
            if (r[1] & (1u << 30)) f |= EVS_CPU_X86_AVX512BW;
            if (r[1] & (1u << 31)) f |= EVS_CPU_X86_AVX512VL;
        }
    }
    return f;
}

#elif defined(EVS_ARM64)
#if defined(__linux__) || defined(__ANDROID__)
#include <sys/auxv.h>
#ifndef HWCAP_PMULL
#define HWCAP_PMULL (1 << 4)
#endif
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
static unsigned evs_detect(void)
{
    unsigned long hw = getauxval(AT_HWCAP);
    unsigned f = 0;
    if (hw & HWCAP_CRC32) f |= EVS_CPU_ARM_CRC32;
    if (hw & HWCAP_PMULL) f |= EVS_CPU_ARM_PMULL;
    return f;
}
#elif defined(__APPLE__)
#include <sys/sysctl.h>
static unsigned evs_detect(void)
{
    int v = 0;
    size_t n = sizeof(v);
    unsigned f = EVS_CPU_ARM_PMULL; /* every Apple arm64 core has the crypto extension */
    if (sysctlbyname("hw.optional.armv8_crc32", &v, &n, NULL, 0) == 0 && v)
        f |= EVS_CPU_ARM_CRC32;
    return f;
}
#elif defined(_WIN32)
#include <windows.h>
#ifndef PF_ARM_V8_CRYPTO_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V8_CRYPTO_INSTRUCTIONS_AVAILABLE 30
#endif
#ifndef PF_ARM_V8_CRC32_INSTRUCTIONS_AVAILABLE
#define PF_ARM_V8_CRC32_INSTRUCTIONS_AVAILABLE 31
#endif
static unsigned evs_detect(void)
{
    unsigned f = 0;
    if (IsProcessorFeaturePresent(PF_ARM_V8_CRC32_INSTRUCTIONS_AVAILABLE)) f |= EVS_CPU_ARM_CRC32;
    if (IsProcessorFeaturePresent(PF_ARM_V8_CRYPTO_INSTRUCTIONS_AVAILABLE)) f |= EVS_CPU_ARM_PMULL;
    return f;
}
#else
static unsigned evs_detect(void) { return 0; }
#endif

#else
static unsigned evs_detect(void) { return 0; }
#endif

unsigned evs_cpu_features(void)
{
    /* Bit 31 marks "detected"; a racing first call stores the same value. */
    static volatile unsigned cached = 0;
    unsigned f = cached;
    if (!(f & 0x80000000u)) {
        f = evs_detect() | 0x80000000u;
        cached = f;
    }
    return f & 0x7fffffffu;
}
