#!/usr/bin/env python3
"""Derive every constant of the IEEE CRC-32 kernels and write ext/crc32_constants.h.

Run from anywhere:  python ext/gen_crc32_constants.py   (tests/test_crc32_constants.py checks that the
committed header is what this script produces).

Conventions (the reflected CRC: the first message bit is the highest power of x):
- A polynomial is a Python int with bit m = coefficient of x^m ("normal" form).
- A 64-bit lane of a SIMD register holds a polynomial "reflected": lane bit i = coefficient of x^(63-i).
  A carry-less multiply of two such lanes gives a 128-bit value whose bit k is the coefficient of
  x^(127-k) of a*b*x: every product carries one extra factor x, which the constants absorb.
- Folding a 128-bit block X = H*x^64 + L (H = low lane, L = high lane) forward over D bits:
  X*x^D == H*(x^(D+64) mod P) + L*(x^D mod P); with the extra x the lane constants are
  x^(D+63) mod P (for H) and x^(D-1) mod P (for L).
- Final reduction of a 128-bit X to the CRC (X*x^32 mod P), three multiplies:
    Y = clmul(H, (x^96 mod P)*x^31) ^ (L moved to the low lane)     ==  X*x^64, Y = A*x^32, deg A < 96
    q = high 64 bits of clmul(low lane of Y, floor(x^95/P))          Barrett quotient floor(A/P)
    crc = dword 2 of Y ^ clmul(q, P*x^31)
"""

import os
import sys

POLY = 0x104C11DB7  # x^32 + ... + 1, normal form; reflected 32-bit form 0xEDB88320
POLY_REFLECTED = 0xEDB88320

# Chorba periods (see chorba_sources): skipped blocks per period, per register width in bits; the first
# round of a period folds the 8 accumulators over 8 + skip blocks. Measured on Zen 3 with 6, 7, 8, 10 and
# 16: the xmm loop was fastest at 6 (-4 % at 7 and 8: its XORs and loads start to bind), the ymm loop at 8
# (+3 % over 6, less at 10 and 16).
CHORBA_SKIP = {128: 6, 256: 8}
CHORBA_BLOCKS = 32

# bits; every fold any kernel uses
FOLD_DISTANCES = tuple(
    sorted({128, 256, 384, 512, 640, 768, 1024, 2048, 4096, *(w * (8 + k) for w, k in CHORBA_SKIP.items())})
)


def pmod(a, m=POLY):
    """a mod m over GF(2)."""
    dm = m.bit_length() - 1
    while a.bit_length() - 1 >= dm:
        a ^= m << (a.bit_length() - 1 - dm)
    return a


def pdiv(a, m=POLY):
    """floor(a / m) over GF(2)."""
    dm = m.bit_length() - 1
    q = 0
    while a.bit_length() - 1 >= dm:
        s = a.bit_length() - 1 - dm
        q |= 1 << s
        a ^= m << s
    return q


def xpow_mod(n):
    """x^n mod P."""
    return pmod(1 << n)


def reflect(v, nbits):
    r = 0
    for i in range(nbits):
        if (v >> i) & 1:
            r |= 1 << (nbits - 1 - i)
    return r


def lane(poly):
    """The reflected 64-bit lane value of a polynomial of degree < 64."""
    assert poly >> 64 == 0
    return reflect(poly, 64)


def fold_pair(distance):
    """(constant for the low lane, constant for the high lane) folding 128 bits over `distance` bits."""
    return lane(xpow_mod(distance + 63)), lane(xpow_mod(distance - 1))


def barrett():
    """(Y multiplier, mu, P*x^31) for the final 128 -> 32 bit reduction."""
    return lane(xpow_mod(96) << 31), lane(pdiv(1 << 95)), lane(POLY << 31)


def shift_constant(nbytes):
    """Reflected 32-bit x^(8*nbytes - 33) mod P: multiplying a CRC by it with one carry-less 32x32
    multiply (which adds a factor x) and reducing the 64-bit product with the CRC32 instruction (which
    multiplies by x^32) advances the CRC over nbytes zero bytes. Used to merge ARM CRC streams."""
    return reflect(xpow_mod(8 * nbytes - 33), 32)


def mulmod(a, b):
    """a * b mod P over GF(2), for a, b of degree < 32."""
    r = 0
    while b:
        if b & 1:
            r ^= a
        b >>= 1
        a <<= 1
        if a >> 32:
            a ^= POLY
    return r


def sparse_multiple(block_bits=128):
    """The exponents T of the sparsest-span multiple of P of the form sum over t in T of x^(block_bits*t).

    The powers (x^block_bits)^t mod P, t = 0, 1, ..., are vectors of GF(2)^32, so 33 of them are linearly
    dependent: Gaussian elimination finds the first dependency, whose members are T. Squaring is linear
    in characteristic 2, so the same T serves 2x, 4x... the block size (xmm, ymm, zmm blocks alike)."""
    step, power, basis = xpow_mod(block_bits), 1, {}
    for t in range(64):
        vec, combo = power, 1 << t
        while vec:
            top = vec.bit_length() - 1
            if top not in basis:
                basis[top] = (vec, combo)
                break
            vec ^= basis[top][0]
            combo ^= basis[top][1]
        if not vec:
            return [i for i in range(t + 1) if combo >> i & 1]
        power = mulmod(power, step)
    raise AssertionError("no dependency among 64 powers")


# Chorba (folding by XOR): adding a block's multiple of the sparse multiple above moves block j of a
# stream, unchanged, onto blocks j + o for every offset o = max(T) - t (t in T, t != max(T)): the CRC
# does not change, and block j needs no multiply. A period skips its first CHORBA_SKIP blocks that way
# and folds the next CHORBA_BLOCKS by multiplication, each first XORed with what the skipped blocks
# moved onto it. A skipped block can land on a later skipped block, which then moves on with it, so
# each folded block's sources are counted over every such path (a source reached twice cancels).


def chorba_offsets():
    t = sparse_multiple()
    return sorted(max(t) - e for e in t if e != max(t))


def chorba_sources(skip):
    """Per folded block b of a period (block skip + b): the mask of original skipped blocks XORed into it."""
    offsets = chorba_offsets()
    assert skip - 1 + max(offsets) < skip + CHORBA_BLOCKS, "every skipped block must land inside the period"
    moved = []  # moved[i]: block i's content after the moves, as a mask of original skipped blocks
    for i in range(skip + CHORBA_BLOCKS):
        mask = 1 << i if i < skip else 0
        for o in offsets:
            if 0 <= i - o < skip:
                mask ^= moved[i - o]
        moved.append(mask)
    return moved[skip:]


# Lengths of the ARM 3-stream blocks whose merge constants are precomputed (bytes per stream).
ARM_STREAM_BLOCKS = (8192, 1024, 256)


def tables(n=16):
    """Slice-by-n tables: t[0] is the classic byte table; t[k][b] = CRC of byte b followed by k zeros."""
    t0 = []
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ (POLY_REFLECTED if c & 1 else 0)
        t0.append(c)
    t = [t0]
    for k in range(1, n):
        prev = t[k - 1]
        t.append([(prev[b] >> 8) ^ t0[prev[b] & 0xFF] for b in range(256)])
    return t


def render():
    out = []
    w = out.append
    w("/* Generated by ext/gen_crc32_constants.py - do not edit; rerun the script instead. */")
    w("/* IEEE CRC-32 (reflected 0xEDB88320): folding constants, Barrett constants and slice-by-16 tables.")
    w(" * See the script for the lane conventions. */")
    w("#ifndef EVSTREAM_CRC32_CONSTANTS_H")
    w("#define EVSTREAM_CRC32_CONSTANTS_H")
    w("")
    w("#include <stdint.h>")
    w("")
    w("/* Fold 128 bits forward over D bits: {low-lane constant x^(D+63) mod P, high-lane x^(D-1) mod P}. */")
    for d in FOLD_DISTANCES:
        lo, hi = fold_pair(d)
        w("#define EVS_CRC32_FOLD_%d_LO UINT64_C(0x%016x)" % (d, lo))
        w("#define EVS_CRC32_FOLD_%d_HI UINT64_C(0x%016x)" % (d, hi))
    y, mu, p = barrett()
    w("")
    w("/* Final reduction: (x^96 mod P)*x^31, floor(x^95 / P), P*x^31 as reflected 64-bit lanes. */")
    w("#define EVS_CRC32_FINAL_MULT UINT64_C(0x%016x)" % y)
    w("#define EVS_CRC32_BARRETT_MU UINT64_C(0x%016x)" % mu)
    w("#define EVS_CRC32_BARRETT_P UINT64_C(0x%016x)" % p)
    w("")
    w("/* Chorba periods (see the script), per register width W: CHORBA_SKIP_W blocks folded away")
    w(" * by XOR, then CHORBA_BLOCKS blocks folded by multiplication, the first 8 over FOLD_CHORBA_W;")
    w(" * CHORBA_SOURCES_W[b] = mask of the skipped blocks XORed into folded block b")
    w(" * (offsets %s). */" % ", ".join(map(str, chorba_offsets())))
    w("#define EVS_CRC32_CHORBA_BLOCKS %d" % CHORBA_BLOCKS)
    for bits, skip in CHORBA_SKIP.items():
        lo, hi = fold_pair(bits * (8 + skip))
        w("#define EVS_CRC32_CHORBA_SKIP_%d %d" % (bits, skip))
        w("#define EVS_CRC32_FOLD_CHORBA_%d_LO UINT64_C(0x%016x)" % (bits, lo))
        w("#define EVS_CRC32_FOLD_CHORBA_%d_HI UINT64_C(0x%016x)" % (bits, hi))
        masks = ", ".join("0x%04x" % m for m in chorba_sources(skip))
        w("#define EVS_CRC32_CHORBA_SOURCES_%d {%s}" % (bits, masks))
    w("")
    w("/* ARM stream merge: reflected x^(8*N - 33) mod P for N bytes per stream. */")
    for n in ARM_STREAM_BLOCKS:
        w("#define EVS_CRC32_SHIFT_%d UINT32_C(0x%08x)" % (n, shift_constant(n)))
    w("")
    w("/* Slice-by-16: evs_crc32_table[k][b] = CRC register of byte b followed by k zero bytes.")
    w(" * Only the file that defines EVS_CRC32_WANT_TABLE gets it (one copy, no unused-variable warning). */")
    w("#ifdef EVS_CRC32_WANT_TABLE")
    w("static const uint32_t evs_crc32_table[16][256] = {")
    for k, row in enumerate(tables()):
        w("    {")
        for i in range(0, 256, 6):
            w("        " + " ".join("0x%08x," % v for v in row[i : i + 6]))
        w("    }%s" % ("," if k < 15 else ""))
    w("};")
    w("#endif")
    w("")
    w("#endif")
    return "\n".join(out) + "\n"


HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crc32_constants.h")


def main(argv):
    text = render()
    if "--check" in argv:
        with open(HEADER, encoding="ascii") as f:
            ok = f.read() == text
        print("crc32_constants.h is %s" % ("up to date" if ok else "STALE: rerun the generator"))
        return 0 if ok else 1
    with open(HEADER, "w", encoding="ascii", newline="\n") as f:
        f.write(text)
    print("wrote", HEADER)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
