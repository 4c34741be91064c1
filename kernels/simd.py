"""Vector building blocks the CPU kernels need but LLVM's auto-vectoriser cannot produce alone.

* :func:`dot_tile_columns`: a 4 x 4 tile of dot products (X_i . Y_j) over the leading columns, with
  the 16 accumulators held as explicit SIMD vectors, and one software prefetch (a 64-byte line of
  another array, into L2) issued per step of the column loop. Written by hand because a prefetch
  inside an auto-vectorised reduction loop either stops the vectorisation or is scalarised into
  one prefetch per lane. Interleaving the prefetches with the arithmetic is what lets the next
  video stream in from DRAM while the current one is computed from cache.
* :func:`exp_flush`: a branch-free float64 exp (Cody-Waite reduction, degree-12 Taylor
  polynomial, exponent built from bits) that a loop can vectorise; ``math.exp`` stays a scalar
  libm call without SVML.
"""
from __future__ import annotations

import math

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _vector_bytes() -> int:
    """Width of the explicit vectors: 32 bytes (AVX ymm) where the host has AVX, else 16."""
    try:
        features = llvm_binding.get_host_cpu_features()
    except RuntimeError:                    # hosts LLVM cannot describe: portable width
        return 16
    return 32 if features.get("avx", False) else 16


VECTOR_BYTES = _vector_bytes()
LINE_BYTES = 64                    # one prefetch per cache line: sparser ones were slower here


@njit(cache=True)
def tile_step_columns(itemsize):
    """Columns one step of :func:`dot_tile_columns` consumes (two vectors per row)."""
    return 2 * VECTOR_BYTES // itemsize


@intrinsic
def dot_tile_columns(typingctx, X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi, columns):
    """16 sums s[4 r + c] = sum_{d < Dv} X[rows_x[r], d] * Y[rows_y[c], d] (r, c in 0..3), with
    Dv = columns rounded down to a multiple of 2 W (W lanes per vector); the caller adds the rest.

    X, Y: 2-D arrays of one float dtype whose first ``columns`` columns are contiguous in memory
    (not checked here: the caller passes 0 for strided rows); rows_x, rows_y: 4-tuples of valid
    row indices. Sums accumulate in the array
    dtype, lane-wise, then across lanes. While columns remain, step s prefetches the line at byte
    prefetch_lo + 64 s of P's data, up to prefetch_hi (exclusive; the caller keeps it inside P).
    """
    if not (isinstance(X, types.Array) and isinstance(Y, types.Array) and X.ndim == 2
            and Y.ndim == 2 and X.dtype == Y.dtype and X.dtype in (types.float32, types.float64)
            and isinstance(P, types.Array)):
        return None
    dtype = X.dtype
    signature = types.UniTuple(dtype, 16)(X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi,
                                          columns)

    def codegen(context, builder, sig, args):
        xval, rxval, yval, ryval, pval, lo, hi, columns = args
        xarr = context.make_array(sig.args[0])(context, builder, xval)
        yarr = context.make_array(sig.args[2])(context, builder, yval)
        parr = context.make_array(sig.args[4])(context, builder, pval)
        elem = context.get_value_type(dtype)
        itemsize = context.get_abi_sizeof(elem)
        lanes = VECTOR_BYTES // itemsize
        vec = ir.VectorType(elem, lanes)
        i64 = ir.IntType(64)
        i32 = ir.IntType(32)
        lo = context.cast(builder, lo, sig.args[5], types.int64)
        hi = context.cast(builder, hi, sig.args[6], types.int64)

        def row_addresses(arr, rows, rows_type):
            base = builder.ptrtoint(arr.data, i64)
            stride = builder.extract_value(arr.strides, 0)
            out = []
            for r in range(4):
                row = context.cast(builder, builder.extract_value(rows, r), rows_type[r], types.int64)
                out.append(builder.add(base, builder.mul(row, stride)))
            return out

        xrows = row_addresses(xarr, rxval, sig.args[1])
        yrows = row_addresses(yarr, ryval, sig.args[3])
        columns = context.cast(builder, columns, sig.args[7], types.int64)
        steps = builder.udiv(columns, ir.Constant(i64, 2 * lanes))
        zero = ir.Constant(vec, [ir.Constant(elem, 0.0)] * lanes)
        accumulators = [cgutils.alloca_once_value(builder, zero) for _ in range(16)]
        cursor = cgutils.alloca_once_value(builder, lo)
        prefetch_base = builder.ptrtoint(parr.data, i64)
        prefetch_type = ir.FunctionType(ir.VoidType(), [ir.PointerType(), i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
        flags = ("contract", "reassoc")
        with cgutils.for_range(builder, steps) as loop:
            step_offset = builder.mul(loop.index, ir.Constant(i64, 2 * VECTOR_BYTES))
            for half in range(2):
                offset = builder.add(step_offset, ir.Constant(i64, half * VECTOR_BYTES))
                loaded = []
                for address in xrows + yrows:
                    value = builder.load(builder.inttoptr(builder.add(address, offset),
                                                          ir.PointerType()), typ=vec)
                    value.align = itemsize
                    loaded.append(value)
                for r in range(4):
                    for c in range(4):
                        slot = accumulators[4 * r + c]
                        product = builder.fmul(loaded[r], loaded[4 + c], flags=flags)
                        builder.store(builder.fadd(builder.load(slot), product, flags=flags), slot)
            position = builder.load(cursor)
            with builder.if_then(builder.icmp_signed("<", position, hi), likely=True):
                target = builder.inttoptr(builder.add(prefetch_base, position), ir.PointerType())
                # read, locality 2 (L2 and outward), data cache
                builder.call(prefetch, [target, ir.Constant(i32, 0), ir.Constant(i32, 2),
                                        ir.Constant(i32, 1)])
                builder.store(builder.add(position, ir.Constant(i64, LINE_BYTES)), cursor)
        sums = []
        for slot in accumulators:
            value = builder.load(slot)
            parts = [builder.extract_element(value, ir.Constant(i32, lane)) for lane in range(lanes)]
            while len(parts) > 1:                           # pairwise across the lanes
                parts = [builder.fadd(parts[2 * q], parts[2 * q + 1], flags=flags)
                         for q in range(len(parts) // 2)]
            sums.append(parts[0])
        return context.make_tuple(builder, sig.return_type, sums)

    return signature, codegen


@intrinsic
def _bits_as_float64(typingctx, bits):
    """Reinterpret an int64's bits as a float64 (vectorisable, unlike math.ldexp)."""
    if bits != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


LOG2_E = 1.4426950408889634
LN2_HIGH = 6.93147180369123816490e-01       # 32 significant bits: n * LN2_HIGH is exact
LN2_LOW = 1.90821492927058770002e-10
EXP_FLUSH_BELOW = -708.0                     # exp(-708) = 3.3e-308: below, the result is 0
EXP_MAX = 709.0


@njit(cache=True, fastmath={"contract"})
def exp_flush(x):
    """exp(x) for float64 x <= 709 to about 2 ulp, with results below exp(-708) ~ 3e-308 flushed to
    0 (no subnormals) and -inf -> 0, NaN -> NaN. Branch-free, so loops over it vectorise.

    x = n ln2 + r, |r| <= ln2 / 2 (n = round(x / ln2), r by Cody-Waite in two parts);
    exp(r) by its Taylor polynomial to r^12 (truncation < 2e-16); 2^n from the exponent bits.
    No reassociation is allowed here: it would merge the two parts of ln 2.
    """
    xc = min(max(x, EXP_FLUSH_BELOW - 1.0), EXP_MAX)
    n = math.floor(xc * LOG2_E + 0.5)
    r = (xc - n * LN2_HIGH) - n * LN2_LOW
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    scale = _bits_as_float64((int(n) + 1023) << 52)
    value = p * scale
    value = 0.0 if x < EXP_FLUSH_BELOW else value
    return x if x != x else value
