"""Vector building blocks the CPU kernels need but LLVM's auto-vectoriser cannot produce alone.

* :func:`dot_tile_columns` / :func:`dot_triangles_columns`: a 4 x 4 tile of dot products
  (X_i . Y_j), or the upper triangles of two diagonal 4 x 4 Gram blocks, with the accumulators
  held as explicit SIMD vectors (LLVM intrinsics written here in IR). Loads are aligned where the
  rows allow (a masked vector takes each row's unaligned head, masked vectors the tail), and one
  software prefetch (a 64-byte line of another array, into L2) is issued per step of the column
  loop. Written by hand because a prefetch inside an auto-vectorised reduction loop either stops
  the vectorisation or is scalarised into one prefetch per lane; interleaving the prefetches
  with the arithmetic is what lets the next video stream in from DRAM while the current one is
  computed from cache.
* :func:`exp_flush` / :func:`exp_finite`: branch-free float64 exps (Cody-Waite reduction, Taylor
  polynomial by Estrin's scheme, exponent built from bits) that a loop can vectorise;
  ``math.exp`` stays a scalar libm call without SVML.
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


def _dot_products_intrinsic(pairs, doc):
    """An intrinsic f(X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi, columns) returning one
    dot product per (a, b) in ``pairs``, where slots 0-3 are X[rows_x[0..3]] and 4-7 are
    Y[rows_y[0..3]]: sum over the leading columns (see :func:`dot_tile_columns`)."""
    count = len(pairs)

    def typer(typingctx, X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi, columns):
        if not (isinstance(X, types.Array) and isinstance(Y, types.Array) and X.ndim == 2
                and Y.ndim == 2 and X.dtype == Y.dtype
                and X.dtype in (types.float32, types.float64) and isinstance(P, types.Array)):
            return None
        dtype = X.dtype
        signature = types.UniTuple(dtype, count)(X, rows_x, Y, rows_y, P, prefetch_lo,
                                                 prefetch_hi, columns)
        return signature, lambda context, builder, sig, args: _codegen_dot_products(
            context, builder, sig, args, dtype, pairs)

    typer.__doc__ = doc
    return intrinsic(typer)


def _codegen_dot_products(context, builder, sig, args, dtype, pairs):
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

    def const(value):
        return ir.Constant(i64, value)

    def row_addresses(arr, rows, rows_type):
        base = builder.ptrtoint(arr.data, i64)
        stride = builder.extract_value(arr.strides, 0)
        out = []
        for r in range(4):
            row = context.cast(builder, builder.extract_value(rows, r), rows_type[r], types.int64)
            out.append(builder.add(base, builder.mul(row, stride)))
        return out

    addresses = (row_addresses(xarr, rxval, sig.args[1]) + row_addresses(yarr, ryval, sig.args[3]))
    used = sorted({slot for pair in pairs for slot in pair})
    total = builder.mul(context.cast(builder, columns, sig.args[7], types.int64), const(itemsize))
    # Align the loads of X's rows: where every row of X starts at the same offset within a
    # vector (row stride a multiple of the vector width), the first `head` bytes go through one
    # masked vector and the rest through aligned ones (a load split across cache lines costs two).
    x_base = builder.ptrtoint(xarr.data, i64)
    x_stride = builder.extract_value(xarr.strides, 0)
    misaligned = builder.and_(x_base, const(VECTOR_BYTES - 1))
    rows_share_alignment = builder.icmp_unsigned(
        "==", builder.and_(x_stride, const(VECTOR_BYTES - 1)), const(0))
    head = builder.select(rows_share_alignment,
                          builder.and_(builder.sub(const(VECTOR_BYTES), misaligned),
                                       const(VECTOR_BYTES - 1)), const(0))
    head = builder.select(builder.icmp_signed("<", head, total), head, total)
    steps = builder.udiv(builder.sub(total, head), const(2 * VECTOR_BYTES))
    tail_start = builder.add(head, builder.mul(steps, const(2 * VECTOR_BYTES)))
    tail = builder.sub(total, tail_start)                       # 0 <= tail < 2 vectors

    zero = ir.Constant(vec, [ir.Constant(elem, 0.0)] * lanes)
    accumulators = [cgutils.alloca_once_value(builder, zero) for _ in pairs]
    cursor = cgutils.alloca_once_value(builder, lo)
    prefetch_base = builder.ptrtoint(parr.data, i64)
    prefetch_type = ir.FunctionType(ir.VoidType(), [ir.PointerType(), i32, i32, i32])
    prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
    mask_type = ir.VectorType(ir.IntType(1), lanes)
    masked_load_type = ir.FunctionType(vec, [ir.PointerType(), i32, mask_type, vec])
    suffix = "f32" if itemsize == 4 else "f64"
    masked_load = cgutils.get_or_insert_function(
        builder.module, masked_load_type, f"llvm.masked.load.v{lanes}{suffix}.p0")
    lane_bytes = ir.Constant(ir.VectorType(i64, lanes), [lane * itemsize for lane in range(lanes)])
    flags = ("contract", "reassoc")

    def accumulate(offset, mask=None):
        """Every pair's accumulator += products of the vectors at byte ``offset`` of the rows."""
        loaded = {}
        for slot in used:
            pointer = builder.inttoptr(builder.add(addresses[slot], offset), ir.PointerType())
            if mask is None:
                value = builder.load(pointer, typ=vec)
                value.align = itemsize
            else:
                value = builder.call(masked_load, [pointer, ir.Constant(i32, itemsize), mask, zero])
            loaded[slot] = value
        for (a, b), accumulator in zip(pairs, accumulators):
            product = builder.fmul(loaded[a], loaded[b], flags=flags)
            builder.store(builder.fadd(builder.load(accumulator), product, flags=flags),
                          accumulator)

    def lanes_where(low, high):
        """Mask of the lanes whose byte offset within the vector lies in [low, high)."""
        splat_low = builder.insert_element(ir.Constant(ir.VectorType(i64, lanes), None), low,
                                           ir.Constant(i32, 0))
        splat_high = builder.insert_element(ir.Constant(ir.VectorType(i64, lanes), None), high,
                                            ir.Constant(i32, 0))
        broadcast = ir.Constant(ir.VectorType(i32, lanes), [0] * lanes)
        splat_low = builder.shuffle_vector(splat_low, splat_low, broadcast)
        splat_high = builder.shuffle_vector(splat_high, splat_high, broadcast)
        return builder.and_(builder.icmp_signed(">=", lane_bytes, splat_low),
                            builder.icmp_signed("<", lane_bytes, splat_high))

    with builder.if_then(builder.icmp_signed(">", head, const(0)), likely=False):
        # the vector ending at byte `head`: its lanes before byte 0 are masked off
        offset = builder.sub(head, const(VECTOR_BYTES))
        accumulate(offset, lanes_where(builder.sub(const(VECTOR_BYTES), head), const(VECTOR_BYTES)))
    with cgutils.for_range(builder, steps) as loop:
        step_offset = builder.add(head, builder.mul(loop.index, const(2 * VECTOR_BYTES)))
        accumulate(step_offset)
        accumulate(builder.add(step_offset, const(VECTOR_BYTES)))
        position = builder.load(cursor)
        with builder.if_then(builder.icmp_signed("<", position, hi), likely=True):
            target = builder.inttoptr(builder.add(prefetch_base, position), ir.PointerType())
            # read, locality 2 (L2 and outward), data cache
            builder.call(prefetch, [target, ir.Constant(i32, 0), ir.Constant(i32, 2),
                                    ir.Constant(i32, 1)])
            builder.store(builder.add(position, const(LINE_BYTES)), cursor)
    with builder.if_then(builder.icmp_signed(">", tail, const(0)), likely=True):
        accumulate(tail_start, lanes_where(const(0), tail))
        with builder.if_then(builder.icmp_signed(">", tail, const(VECTOR_BYTES)), likely=True):
            accumulate(builder.add(tail_start, const(VECTOR_BYTES)),
                       lanes_where(const(0), builder.sub(tail, const(VECTOR_BYTES))))
    sums = []
    for accumulator in accumulators:
        value = builder.load(accumulator)
        parts = [builder.extract_element(value, ir.Constant(i32, lane)) for lane in range(lanes)]
        while len(parts) > 1:                           # pairwise across the lanes
            parts = [builder.fadd(parts[2 * q], parts[2 * q + 1], flags=flags)
                     for q in range(len(parts) // 2)]
        sums.append(parts[0])
    return context.make_tuple(builder, sig.return_type, sums)


TILE_PAIRS = tuple((r, 4 + c) for r in range(4) for c in range(4))
TRIANGLE_PAIRS = (tuple((r, c) for r in range(4) for c in range(r, 4))
                  + tuple((4 + r, 4 + c) for r in range(4) for c in range(r, 4)))

dot_tile_columns = _dot_products_intrinsic(TILE_PAIRS, """\
    16 sums s[4 r + c] = sum_{d < columns} X[rows_x[r], d] * Y[rows_y[c], d] (r, c in 0..3).

    X, Y: 2-D arrays of one float dtype whose first ``columns`` columns are contiguous in memory
    (not checked here: the caller passes 0 for strided rows and sums those itself); rows_x,
    rows_y: 4-tuples of valid row indices. Sums accumulate in the array dtype, lane-wise, then
    across lanes. The loads of X are aligned to the vector width where its rows allow (a masked
    vector takes the unaligned head; masked vectors take the tail: no element outside the
    columns is read). Each step of two vectors prefetches the line at byte prefetch_lo + 64 s
    of P's data while that stays below prefetch_hi (the caller keeps it inside P).
    """)

dot_triangles_columns = _dot_products_intrinsic(TRIANGLE_PAIRS, """\
    The upper triangles (diagonal included) of two diagonal 4 x 4 Gram blocks in one pass:
    20 sums, first X[a_r] . X[a_c] for r <= c (row-major: (0,0), (0,1), ..., (3,3)) with
    a = rows_x, then the same for b = rows_y over Y. 20 FMAs per 8 loads where two 4 x 4 tiles
    would spend 32 FMAs (12 of them on lower-triangle duplicates). Arguments as for
    :func:`dot_tile_columns`.
    """)


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
_C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = (1.0 / math.factorial(n) for n in range(3, 13))


@njit(cache=True, fastmath={"contract"})
def exp_flush(x):
    """exp(x) for float64 x <= 709 to about 2 ulp, with results below exp(-708) ~ 3e-308 flushed to
    0 (no subnormals) and -inf -> 0, NaN -> NaN. Branch-free, so loops over it vectorise:
    :func:`exp_finite` (full polynomial) on x clamped to [-709, 709] (below -708 the result is
    discarded), then the flush and NaN selects.
    """
    value = exp_finite(min(max(x, EXP_FLUSH_BELOW - 1.0), EXP_MAX), False)
    value = 0.0 if x < EXP_FLUSH_BELOW else value
    return x if x != x else value


@njit(cache=True, fastmath={"contract"})
def exp_finite(x, coarse):
    """exp(x) for finite x in [-708, 709] only (no clamping, flushing or NaN handling: the caller
    guarantees the range), branch-free.

    x = n ln2 + r, |r| <= ln2 / 2 (n = round(x / ln2), r by Cody-Waite in two parts); exp(r) by
    its Taylor polynomial evaluated by Estrin's scheme (a short dependency chain, so vectorised
    loops are not latency-bound); 2^n from the exponent bits. No reassociation is allowed here:
    it would merge the two parts of ln 2. ``coarse`` (loop-invariant, so LLVM unswitches it) stops
    the Taylor polynomial at r^7: relative error < 1e-8, for graphs built from float32 features
    whose Gram already carries ~1e-6; otherwise to r^12 like :func:`exp_flush` (~1.5 ulp)."""
    n = math.floor(x * LOG2_E + 0.5)
    r = (x - n * LN2_HIGH) - n * LN2_LOW
    r2 = r * r
    r4 = r2 * r2
    s0 = (1.0 + r) + (0.5 + r * _C3) * r2
    s1 = (_C4 + r * _C5) + (_C6 + r * _C7) * r2
    if coarse:
        p = s0 + s1 * r4
    else:
        s2 = (_C8 + r * _C9) + (_C10 + r * _C11) * r2
        p = (s0 + s1 * r4) + (s2 + r4 * _C12) * (r4 * r4)
    return p * _bits_as_float64((int(n) + 1023) << 52)
