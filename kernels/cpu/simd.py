"""Vector building blocks the CPU kernels need but LLVM's auto-vectoriser cannot produce alone.

* :func:`dot_tile_columns` / :func:`dot_triangles_columns`: a 4 x 4 tile of dot products
  (X_i . Y_j), or the upper triangles of two diagonal 4 x 4 Gram blocks, with the accumulators
  held as explicit SIMD vectors (LLVM intrinsics written here in IR): 64-byte zmm vectors where
  the host has AVX-512, else 32 or 16 bytes; one vector of every row per step, and the lanes
  summed at the end by a shuffle tree. Loads are aligned where the rows allow (a masked vector
  takes each row's unaligned head, another the tail), and one software prefetch (a 64-byte line
  of another array, into L2) is issued per step of the column loop. Written by hand because a
  prefetch inside an auto-vectorised reduction loop either stops the vectorisation or is
  scalarised into one prefetch per lane; interleaving the prefetches with the arithmetic is what
  lets the next video stream in from DRAM while the current one is computed from cache.
* :func:`exp_flush` / :func:`exp_finite`: branch-free float64 exps (Cody-Waite reduction, Taylor
  polynomial by Estrin's scheme, exponent built from bits) that a loop can vectorise;
  ``math.exp`` stays a scalar libm call without SVML.

Editing this file: numba's on-disk cache (``cache=True``) tracks only the file that defines each
jitted function, so the cached machine code of the kernels that inline these intrinsics would keep
the old ones; :mod:`lanp.kernels.cpu.cache_guard` drops lanp's cached kernels whenever any CPU
kernel source changes (the first import after an edit recompiles).
"""
from __future__ import annotations

import math

import llvmlite.binding as llvm_binding
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _vector_bytes() -> int:
    """Width of the explicit vectors: 64 bytes (zmm) where the host has AVX-512F, 32 (ymm) with
    AVX, else 16 (why the widest: bench/RESULTS.md, "Notes moved from the kernels' docstrings")."""
    try:
        features = llvm_binding.get_host_cpu_features()
    except RuntimeError:                    # hosts LLVM cannot describe: portable width
        return 16
    if features.get("avx512f", False):
        return 64
    return 32 if features.get("avx", False) else 16


VECTOR_BYTES = _vector_bytes()
LINE_BYTES = 64                    # one prefetch per cache line (bench/RESULTS.md)


def _dot_products_intrinsic(pairs, doc, vector_bytes=None):
    """An intrinsic f(X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi, columns) returning one
    dot product per (a, b) in ``pairs``, where slots 0-3 are X[rows_x[0..3]] and 4-7 are
    Y[rows_y[0..3]]: sum over the leading columns (see :func:`dot_tile_columns`).
    ``vector_bytes`` (default: :data:`VECTOR_BYTES`) is the SIMD width; tests build the narrower
    ones too."""
    count = len(pairs)
    width = VECTOR_BYTES if vector_bytes is None else vector_bytes

    def typer(typingctx, X, rows_x, Y, rows_y, P, prefetch_lo, prefetch_hi, columns):
        if not (isinstance(X, types.Array) and isinstance(Y, types.Array) and X.ndim == 2
                and Y.ndim == 2 and X.dtype == Y.dtype
                and X.dtype in (types.float32, types.float64) and isinstance(P, types.Array)):
            return None
        dtype = X.dtype
        signature = types.UniTuple(dtype, count)(X, rows_x, Y, rows_y, P, prefetch_lo,
                                                 prefetch_hi, columns)
        return signature, lambda context, builder, sig, args: _codegen_dot_products(
            context, builder, sig, args, dtype, pairs, width)

    typer.__doc__ = doc
    return intrinsic(typer)


def reduction_network(count, lanes):
    """How :func:`_reduce_lanes` sums ``count`` vectors of ``lanes`` lanes each across their lanes.

    Each round pairs the vectors (a zero vector pads an odd count). Where their lanes hold blocks
    of ``group`` partial sums, one shuffle of each pair (A, B) takes the first halves of A's and
    B's blocks, another the second halves, and their sum holds blocks of group / 2 partial sums,
    A's and B's alternating. After log2(lanes) rounds each lane holds one finished sum. Returns
    the rounds as (first, second, labels): the two shuffle masks (indices into A then B) and, per
    resulting vector, the index of the input vector whose sum each lane carries (-1: padding)."""
    labels = [[q] * lanes for q in range(count)]
    group = lanes
    rounds = []
    while group > 1:
        if len(labels) % 2:
            labels = labels + [[-1] * lanes]
        half = group // 2
        first, second = [], []
        for block in range(0, lanes, group):
            first += list(range(block, block + half)) + [lanes + c for c in range(block, block + half)]
            second += (list(range(block + half, block + group))
                       + [lanes + c for c in range(block + half, block + group)])
        merged = []
        for a, b in zip(labels[0::2], labels[1::2]):
            out = []
            for block in range(0, lanes, group):
                out += [a[block]] * half + [b[block]] * half
            merged.append(out)
        rounds.append((first, second, merged))
        labels = merged
        group = half
    return rounds


def _reduce_lanes(builder, vectors, zero, lanes, flags):
    """Sum each vector across its lanes with 2 shuffles and 1 add per pair and round (a tree of
    whole-vector operations: 16 zmm float32 sums take 30 shuffles and 15 adds, where extracting
    every lane would take 256 extracts and 240 scalar adds). Returns the sums in input order."""
    i32 = ir.IntType(32)
    rounds = reduction_network(len(vectors), lanes)
    current = list(vectors)
    for first, second, _ in rounds:
        if len(current) % 2:
            current.append(zero)
        mask_first = ir.Constant(ir.VectorType(i32, lanes), first)
        mask_second = ir.Constant(ir.VectorType(i32, lanes), second)
        current = [builder.fadd(builder.shuffle_vector(a, b, mask_first),
                                builder.shuffle_vector(a, b, mask_second), flags=flags)
                   for a, b in zip(current[0::2], current[1::2])]
    final_labels = rounds[-1][2] if rounds else [[q] for q in range(len(vectors))]
    sums = [None] * len(vectors)
    for vector, labels in zip(current, final_labels):
        for lane, label in enumerate(labels):
            if label >= 0:
                sums[label] = builder.extract_element(vector, ir.Constant(i32, lane))
    return sums


def _codegen_dot_products(context, builder, sig, args, dtype, pairs, vector_bytes):
    xval, rxval, yval, ryval, pval, lo, hi, columns = args
    xarr = context.make_array(sig.args[0])(context, builder, xval)
    yarr = context.make_array(sig.args[2])(context, builder, yval)
    parr = context.make_array(sig.args[4])(context, builder, pval)
    elem = context.get_value_type(dtype)
    itemsize = context.get_abi_sizeof(elem)
    lanes = vector_bytes // itemsize
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
    misaligned = builder.and_(x_base, const(vector_bytes - 1))
    rows_share_alignment = builder.icmp_unsigned(
        "==", builder.and_(x_stride, const(vector_bytes - 1)), const(0))
    head = builder.select(rows_share_alignment,
                          builder.and_(builder.sub(const(vector_bytes), misaligned),
                                       const(vector_bytes - 1)), const(0))
    head = builder.select(builder.icmp_signed("<", head, total), head, total)
    steps = builder.udiv(builder.sub(total, head), const(vector_bytes))
    tail_start = builder.add(head, builder.mul(steps, const(vector_bytes)))
    tail = builder.sub(total, tail_start)                       # 0 <= tail < 1 vector

    zero = ir.Constant(vec, [ir.Constant(elem, 0.0)] * lanes)
    accumulators = [cgutils.alloca_once_value(builder, zero) for _ in pairs]
    prefetch_base = builder.add(builder.ptrtoint(parr.data, i64), lo)
    prefetch_span = builder.sub(hi, lo)
    prefetch_type = ir.FunctionType(ir.VoidType(), [ir.PointerType(), i32, i32, i32])
    prefetch = cgutils.get_or_insert_function(builder.module, prefetch_type, "llvm.prefetch.p0")
    mask_type = ir.VectorType(ir.IntType(1), lanes)
    masked_load_type = ir.FunctionType(vec, [ir.PointerType(), i32, mask_type, vec])
    suffix = "f32" if itemsize == 4 else "f64"
    masked_load = cgutils.get_or_insert_function(
        builder.module, masked_load_type, f"llvm.masked.load.v{lanes}{suffix}.p0")
    lane_bytes = ir.Constant(ir.VectorType(i64, lanes), [lane * itemsize for lane in range(lanes)])
    flags = ("contract", "reassoc")

    def products(sums, offset, mask=None):
        """sums + the products of every pair's vectors at byte ``offset`` of the rows."""
        loaded = {}
        for slot in used:
            pointer = builder.inttoptr(builder.add(addresses[slot], offset), ir.PointerType())
            if mask is None:
                value = builder.load(pointer, typ=vec)
                value.align = itemsize
            else:
                value = builder.call(masked_load, [pointer, ir.Constant(i32, itemsize), mask, zero])
            loaded[slot] = value
        return [builder.fadd(acc, builder.fmul(loaded[a], loaded[b], flags=flags), flags=flags)
                for (a, b), acc in zip(pairs, sums)]

    def accumulate(offset, mask=None):
        new = products([builder.load(a) for a in accumulators], offset, mask)
        for accumulator, value in zip(accumulators, new):
            builder.store(value, accumulator)

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
        offset = builder.sub(head, const(vector_bytes))
        accumulate(offset, lanes_where(builder.sub(const(vector_bytes), head), const(vector_bytes)))
    # The body: one vector of every row per step, the sums carried in registers (phis) and every
    # address (loads and prefetch) off one induction variable, so the loop holds the loads, the
    # FMAs, one prefetch and a handful of scalar instructions.
    entry = builder.basic_block
    body = builder.append_basic_block("tile.body")
    done = builder.append_basic_block("tile.done")
    before = [builder.load(a) for a in accumulators]
    builder.cbranch(builder.icmp_signed(">", steps, const(0)), body, done)
    builder.position_at_end(body)
    step = builder.phi(i64)
    running = [builder.phi(vec) for _ in pairs]
    step_bytes = builder.mul(step, const(vector_bytes))
    after = products(running, builder.add(head, step_bytes))
    # prefetch byte lo + 64 s of P while below hi
    prefetch_at = builder.mul(step, const(LINE_BYTES))
    with builder.if_then(builder.icmp_signed("<", prefetch_at, prefetch_span), likely=True):
        target = builder.inttoptr(builder.add(prefetch_base, prefetch_at), ir.PointerType())
        # read, locality 2 (L2 and outward), data cache
        builder.call(prefetch, [target, ir.Constant(i32, 0), ir.Constant(i32, 2),
                                ir.Constant(i32, 1)])
    latch = builder.basic_block
    following = builder.add(step, const(1))
    step.add_incoming(const(0), entry)
    step.add_incoming(following, latch)
    for phi, start, value in zip(running, before, after):
        phi.add_incoming(start, entry)
        phi.add_incoming(value, latch)
    builder.cbranch(builder.icmp_signed("<", following, steps), body, done)
    builder.position_at_end(done)
    results = [builder.phi(vec) for _ in pairs]          # every phi first, then the stores
    for accumulator, result, start, value in zip(accumulators, results, before, after):
        result.add_incoming(start, entry)
        result.add_incoming(value, latch)
        builder.store(result, accumulator)
    with builder.if_then(builder.icmp_signed(">", tail, const(0)), likely=True):
        accumulate(tail_start, lanes_where(const(0), tail))
    sums = _reduce_lanes(builder, [builder.load(a) for a in accumulators], zero, lanes, flags)
    return context.make_tuple(builder, sig.return_type, sums)


TILE_PAIRS = tuple((r, 4 + c) for r in range(4) for c in range(4))
TRIANGLE_PAIRS = (tuple((r, c) for r in range(4) for c in range(r, 4))
                  + tuple((4 + r, 4 + c) for r in range(4) for c in range(r, 4)))

TILE_DOC = """\
    16 sums s[4 r + c] = sum_{d < columns} X[rows_x[r], d] * Y[rows_y[c], d] (r, c in 0..3).

    X, Y: 2-D arrays of one float dtype whose first ``columns`` columns are contiguous in memory
    (not checked here: the caller passes 0 for strided rows and sums those itself); rows_x,
    rows_y: 4-tuples of valid row indices. Sums accumulate in the array dtype, lane-wise, then
    across lanes by a shuffle tree (:func:`reduction_network`). The loads of X are aligned to
    the vector width where its rows allow (a masked vector takes the unaligned head, another the
    tail: no element outside the columns is read). Each step (one vector of every row)
    prefetches the line at byte prefetch_lo + 64 s of P's data while that stays below
    prefetch_hi (the caller keeps it inside P).
    """

TRIANGLES_DOC = """\
    The upper triangles (diagonal included) of two diagonal 4 x 4 Gram blocks in one pass:
    20 sums, first X[a_r] . X[a_c] for r <= c (row-major: (0,0), (0,1), ..., (3,3)) with
    a = rows_x, then the same for b = rows_y over Y. 20 FMAs per 8 loads where two 4 x 4 tiles
    would spend 32 FMAs (12 of them on lower-triangle duplicates). Arguments as for
    :func:`dot_tile_columns`.
    """

dot_tile_columns = _dot_products_intrinsic(TILE_PAIRS, TILE_DOC)
dot_triangles_columns = _dot_products_intrinsic(TRIANGLE_PAIRS, TRIANGLES_DOC)


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
