// lanp.cu: GPU twins of lanp.kernels.cpu.packed (similarity_packed, solve_packed, propagate_packed),
// and (last section) of the cross-video kernels cpu/neighbours.py and cpu/csr.py.
//
// Packed ragged input: x (N, D) float32/float64 row-major, offsets (V+1,) int64; video v owns rows
// offsets[v]:offsets[v+1]. Per video of length L (same math as kernels/cpu/graph.py and cpu/cg.py):
//
//     a_ij  = log Wf_ij - |i - j| / s        (a_ii = -inf, -inf outside the band)
//     lse_i = logsumexp_j a_ij
//     S_ij  = exp(a_ij - (lse_i + lse_j) / 2)
//     (I - alpha S) z = y by conjugate gradient, y = 1 at the seeds (or a given packed y (N,)
//     float64: the *_y kernels).
//
// Squared distances (direct differences of the rows, scaled to unit norm for L2 normalisation
// and cosine, cos = 1 - d2/2) and norms accumulate in double whatever the input dtype; logs, S
// and CG are double.
// Output layout = the CPU layout: dense S flat float64 with video v's (L, L) matrix row-major at
// graph_offsets[v]; banded S (N, 2k+1) float64 with column c <-> j = i + c - k, 0 outside the video.
//
// Structure: every algorithm is written once as a __host__ __device__ function over a "block"
// object (LanpBlock) that supplies the thread index, the barrier and the block sum. The
// __global__ kernels are thin wrappers (block = CUDA block, blockIdx picks the work item); the
// extern "C" *_host functions run the same functions on the CPU with a one-thread block, looping
// over the grid, so tests can check the math through ctypes without a GPU:
//     nvcc -shared -Xcompiler -fPIC -arch=sm_90 $(python -c "from lanp.kernels.codes import
//          cuda_options; print(*cuda_options())") -o liblanp.so lanp.cu
// The file compiles on its own with nvcc and, host part excluded, with NVRTC (cupy.RawModule).

#ifndef LANP_BLOCK
#define LANP_BLOCK 256      // threads per block; a power of two (block sums are trees)
#endif

typedef long long lanp_i64;

// ---------------------------------------------------------------------------------------------
// scalar helpers (no headers: NVRTC has the math builtins, nvcc brings math.h on the host)

__host__ __device__ inline double lanp_neg_inf()
{
    union { unsigned long long u; double d; } v;
    v.u = 0xfff0000000000000ULL;
    return v.d;
}

__host__ __device__ inline bool lanp_finite(double v) { return v - v == 0.0; }

// a * b rounded on its own, never contracted with a following add into one FMA (nvcc and NVRTC
// contract by default: t_i x_i - t_j x_j would round differently for (i, j) and (j, i), and
// be a rounding residue instead of 0 for a repeated snippet). The host twin stores through a
// volatile, which no compiler may fuse.
__host__ __device__ inline double lanp_mul_rn(double a, double b)
{
#ifdef __CUDA_ARCH__
    return __dmul_rn(a, b);
#else
    volatile double p = a * b;
    return p;
#endif
}

__host__ __device__ inline lanp_i64 lanp_min(lanp_i64 a, lanp_i64 b) { return a < b ? a : b; }
__host__ __device__ inline lanp_i64 lanp_max(lanp_i64 a, lanp_i64 b) { return a > b ? a : b; }

// The distance and status codes come from lanp.kernels.codes as -D defines (cupy's RawModule
// options, tests/cuda_build.py's nvcc command): one table for every backend.
#if !defined(LANP_SQEUCLIDEAN) || !defined(LANP_RMS) || !defined(LANP_COSINE) || !defined(LANP_OK) || \
    !defined(LANP_NONFINITE) || !defined(LANP_ZERO) || !defined(LANP_STATUS_KEY_STRIDE)
#error "compile with the codes of lanp.kernels.codes.cuda_options(), e.g. -DLANP_SQEUCLIDEAN=0"
#endif

// ---------------------------------------------------------------------------------------------
// the block: cooperation only (index, barrier, sum, atomic min); everything else is per thread

struct LanpBlock {
    double* red;            // device: shared scratch of LANP_BLOCK doubles; host: unused

    __host__ __device__ int tid() const
    {
#ifdef __CUDA_ARCH__
        return (int)threadIdx.x;
#else
        return 0;
#endif
    }
    __host__ __device__ int size() const
    {
#ifdef __CUDA_ARCH__
        return (int)blockDim.x;
#else
        return 1;
#endif
    }
    __host__ __device__ void sync() const
    {
#ifdef __CUDA_ARCH__
        __syncthreads();
#endif
    }
    // sum of every thread's partial, returned to all threads (a fixed tree: deterministic)
    __host__ __device__ double sum(double partial) const
    {
#ifdef __CUDA_ARCH__
        const int t = (int)threadIdx.x;
        red[t] = partial;
        __syncthreads();
        for (int s = (int)blockDim.x / 2; s > 0; s >>= 1) {
            if (t < s) red[t] += red[t + s];
            __syncthreads();
        }
        const double total = red[0];
        __syncthreads();
        return total;
#else
        return partial;
#endif
    }
    __host__ __device__ void atomic_min(int* p, int v) const
    {
#ifdef __CUDA_ARCH__
        atomicMin(p, v);
#else
        if (v < *p) *p = v;
#endif
    }
};

// ---------------------------------------------------------------------------------------------
// per-thread bodies

// ||row||^2 accumulated in double
template <typename T>
__host__ __device__ inline double lanp_sqnorm(const T* row, lanp_i64 D)
{
    double acc = 0.0;
    for (lanp_i64 d = 0; d < D; ++d) {
        const double v = (double)row[d];
        acc += v * v;
    }
    return acc;
}

// status of a squared norm: non-finite (or too large to square in T), or zero where the
// distance needs a non-zero vector (cosine, L2 normalisation)
template <typename T>
__host__ __device__ inline int lanp_norm_status(double n, int needs_nonzero)
{
    if (!lanp_finite(n) || (sizeof(T) == 4 && n > 3.4028234663852886e38)) return LANP_NONFINITE;
    if (needs_nonzero && n == 0.0) return LANP_ZERO;
    return LANP_OK;
}

// out[m] = ||ti xi - t_m x_{j0+m}||^2 for m < count (count in 1..4) by direct differences
// (exact zero for repeated snippets; symmetric bit for bit, on the device too: the products are
// rounded on their own by lanp_mul_rn, the squares may contract); rows of x are D apart
template <typename T>
__host__ __device__ inline void lanp_sqdist4(const T* xi, double ti, const T* xj0,
                                             const double tj[4], lanp_i64 D, int count,
                                             double out[4])
{
    const T* r0 = xj0;
    const T* r1 = xj0 + (count > 1 ? 1 : 0) * D;
    const T* r2 = xj0 + (count > 2 ? 2 : 0) * D;
    const T* r3 = xj0 + (count > 3 ? 3 : 0) * D;
    const double t0 = tj[0], t1 = tj[count > 1 ? 1 : 0], t2 = tj[count > 2 ? 2 : 0],
                 t3 = tj[count > 3 ? 3 : 0];
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0;
    for (lanp_i64 d = 0; d < D; ++d) {
        const double u = lanp_mul_rn((double)xi[d], ti);
        const double e0 = u - lanp_mul_rn((double)r0[d], t0);
        const double e1 = u - lanp_mul_rn((double)r1[d], t1);
        const double e2 = u - lanp_mul_rn((double)r2[d], t2);
        const double e3 = u - lanp_mul_rn((double)r3[d], t3);
        a0 += e0 * e0; a1 += e1 * e1; a2 += e2 * e2; a3 += e3 * e3;
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
}

// row scale: 1 / ||x_i|| when rows are unit-normalised (L2 normalisation or cosine), else 1
__host__ __device__ inline double lanp_row_scale(double sqnorm, int unit)
{
    return unit ? 1.0 / sqrt(sqnorm) : 1.0;
}

// a_ij from the squared distance d2 (of unit rows for cosine): the CPU's log_affinity
__host__ __device__ inline double lanp_log_affinity(double d2, double dt, lanp_i64 D, int distance,
                                                    double inv_two_sigma2, double inv_scale)
{
    if (d2 < 0.0) d2 = 0.0;
    if (distance == LANP_COSINE) {
        const double c = 1.0 - 0.5 * d2;    // cos = 1 - ||u - v||^2 / 2 for unit u, v
        if (c <= 0.0) return lanp_neg_inf();
        return log(c) - dt * inv_scale;
    }
    if (distance == LANP_RMS) return -sqrt(d2 / (double)D) * inv_two_sigma2 - dt * inv_scale;
    return -d2 * inv_two_sigma2 - dt * inv_scale;
}

// log-sum-exp of one row of log affinities (-inf for an isolated row)
__host__ __device__ inline double lanp_row_lse(const double* row, lanp_i64 width)
{
    double m = lanp_neg_inf();
    for (lanp_i64 c = 0; c < width; ++c)
        if (row[c] > m) m = row[c];
    if (m == lanp_neg_inf()) return m;
    double acc = 0.0;
    for (lanp_i64 c = 0; c < width; ++c) acc += exp(row[c] - m);
    return m + log(acc);
}

__host__ __device__ inline double lanp_normalise(double a, double lse_i, double lse_j)
{
    if (a == lanp_neg_inf() || lse_i == lanp_neg_inf()) return 0.0;
    return exp(a - 0.5 * (lse_i + lse_j));
}

// 1 if row i lies within `reach` rows of one of the video's seeds (local positions 0 <= s < L,
// packed by lanp.kernels.seeds.pack_seeds): CG's j-th search direction is exactly zero beyond
// j k rows of the seeds for a band of half-width k (k == 0, dense: pass reach >= L)
__host__ __device__ inline int lanp_within_reach(lanp_i64 i, const lanp_i64* seeds, int nseeds,
                                                 lanp_i64 reach)
{
    for (int s = 0; s < nseeds; ++s)
        if (i >= seeds[s] - reach && i <= seeds[s] + reach) return 1;
    return 0;
}

// y_i: 1 at the seeds
__host__ __device__ inline double lanp_seed(lanp_i64 i, const lanp_i64* seeds, int nseeds)
{
    return lanp_within_reach(i, seeds, nseeds, 0) ? 1.0 : 0.0;
}

// The right-hand side of one video: the seeds (y == 0), or the given y (L,), whose support the
// kernels do not track (every row is worked on from the first iteration; the rows outside the
// Krylov support compute exact zeros).
struct LanpRhs {
    const lanp_i64* seeds;
    int nseeds;
    const double* y;

    __host__ __device__ double at(lanp_i64 i) const { return y ? y[i] : lanp_seed(i, seeds, nseeds); }
    // row i may be nonzero in a vector CG built with `reach` band steps from y
    __host__ __device__ int reaches(lanp_i64 i, lanp_i64 reach) const
    {
        return y ? 1 : lanp_within_reach(i, seeds, nseeds, reach);
    }
};

// ((I - alpha S) p)_i for dense (k == 0, width L) or banded (half-width k, width 2k+1) S
__host__ __device__ inline double lanp_apply_row(const double* S, lanp_i64 width, int k,
                                                 lanp_i64 L, double alpha, const double* p,
                                                 lanp_i64 i)
{
    double acc = 0.0;
    const double* row = S + i * width;
    if (k == 0) {
        for (lanp_i64 j = 0; j < L; ++j) acc += row[j] * p[j];
    } else {
        const lanp_i64 lo = lanp_max(0, k - i);
        const lanp_i64 hi = lanp_min(width, L - i + k);
        for (lanp_i64 c = lo; c < hi; ++c) acc += row[c] * p[i + c - k];
    }
    return p[i] - alpha * acc;
}

// ---------------------------------------------------------------------------------------------
// block algorithms

// Similarity of the rows [r0, r1) of one video (all of it when dense: k == 0).
// Banded rows need lse of the rows within k of them, so the block also computes the log
// affinities of the halo rows E \ [r0, r1), E = [r0 - k, r1 + k) clipped, into ``halo``
// (rows [e0, r0) then [r1, e1), stride width); the norms of [e0 - k, e1 + k) go to ``norms``,
// the lse of E to ``lse``. ``own`` receives row r0 at own[0] (stride width): the log affinities
// first, S at the end. A bad input row of [r0, r1) lowers *bad_key to LANP_STATUS_KEY_STRIDE * row + status.
template <typename T>
__host__ __device__ void lanp_similarity_rows(const LanpBlock& b, const T* xv, lanp_i64 D,
                                              lanp_i64 L, lanp_i64 r0, lanp_i64 r1, int k,
                                              int distance, int normalize, double inv_two_sigma2,
                                              double temporal_scale, double* own, double* halo,
                                              double* norms, double* lse, int* bad_key)
{
    const lanp_i64 width = k == 0 ? L : 2 * (lanp_i64)k + 1;
    const lanp_i64 e0 = k == 0 ? 0 : lanp_max(0, r0 - k);
    const lanp_i64 e1 = k == 0 ? L : lanp_min(L, r1 + k);
    const lanp_i64 c0 = k == 0 ? 0 : lanp_max(0, e0 - k);
    const lanp_i64 c1 = k == 0 ? L : lanp_min(L, e1 + k);
    const int unit = normalize || distance == LANP_COSINE;   // rows scaled to unit norm
    const double inv_scale = 1.0 / (temporal_scale <= 0.0 ? (double)L : temporal_scale);
    const int t = b.tid(), nt = b.size();

    // 1. squared norms
    for (lanp_i64 i = c0 + t; i < c1; i += nt) {
        const double n = lanp_sqnorm(xv + i * D, D);
        norms[i - c0] = n;
        const int st = lanp_norm_status<T>(n, unit);
        if (st != LANP_OK && i >= r0 && i < r1 && bad_key) b.atomic_min(bad_key, (int)(LANP_STATUS_KEY_STRIDE * i + st));
    }
    b.sync();

    // 2. log affinities of the rows E, four columns per thread (j - i is the temporal distance)
    const lanp_i64 groups = (width + 3) / 4;
    const lanp_i64 work = (e1 - e0) * groups;
    for (lanp_i64 w = t; w < work; w += nt) {
        const lanp_i64 i = e0 + w / groups;
        const lanp_i64 cs = (w % groups) * 4;
        const lanp_i64 ce = lanp_min(width, cs + 4);
        double* row = (i >= r0 && i < r1) ? own + (i - r0) * width
                    : halo + (i < r0 ? i - e0 : (r0 - e0) + (i - r1)) * width;
        // valid columns: 0 <= j < L; j = c (dense) or i + c - k (banded)
        const lanp_i64 off = k == 0 ? 0 : i - k;
        const lanp_i64 vs = lanp_max(cs, -off), ve = lanp_min(ce, L - off);
        double d2[4] = {0.0, 0.0, 0.0, 0.0};
        if (ve > vs) {
            double tj[4] = {1.0, 1.0, 1.0, 1.0};
            for (lanp_i64 c = vs; c < ve; ++c) tj[c - vs] = lanp_row_scale(norms[c + off - c0], unit);
            lanp_sqdist4(xv + i * D, lanp_row_scale(norms[i - c0], unit), xv + (vs + off) * D, tj,
                         D, (int)(ve - vs), d2);
        }
        for (lanp_i64 c = cs; c < ce; ++c) {
            const lanp_i64 j = c + off;
            if (c < vs || c >= ve || j == i) {
                row[c] = lanp_neg_inf();
            } else {
                const double dt = (double)(j > i ? j - i : i - j);
                row[c] = lanp_log_affinity(d2[c - vs], dt, D, distance, inv_two_sigma2, inv_scale);
            }
        }
    }
    b.sync();

    // 3. row log-sum-exp over E
    for (lanp_i64 i = e0 + t; i < e1; i += nt) {
        const double* row = (i >= r0 && i < r1) ? own + (i - r0) * width
                          : halo + (i < r0 ? i - e0 : (r0 - e0) + (i - r1)) * width;
        lse[i - e0] = lanp_row_lse(row, width);
    }
    b.sync();

    // 4. S of the own rows, in place
    const lanp_i64 entries = (r1 - r0) * width;
    for (lanp_i64 w = t; w < entries; w += nt) {
        const lanp_i64 i = r0 + w / width;
        const lanp_i64 c = w % width;
        const lanp_i64 j = k == 0 ? c : i + c - k;
        const double lj = (j >= e0 && j < e1) ? lse[j - e0] : lanp_neg_inf();
        own[w] = lanp_normalise(own[w], lse[i - e0], lj);
    }
    b.sync();
}

// CG for (I - alpha S) z = y of one video, z = 0 first; stops when ||r||^2 <= tol^2 ||y||^2
// (recursive residual) or after maxiter; writes iterations, the true relative residual
// ||y - (I - alpha S) z|| / ||y|| (0 for y = 0: z = 0 after 0 iterations) and converged. r, p,
// q: scratch of length L. With seeds, iteration j works only on the rows within (j + 1) k of a
// seed (lanp_within_reach); the others keep their exact zeros, as in the CPU kernel.
__host__ __device__ inline void lanp_cg(const LanpBlock& b, const double* S, lanp_i64 width,
                                        int k, lanp_i64 L, const LanpRhs& rhs,
                                        double alpha, double tol, int maxiter, double* z,
                                        double* r, double* p, double* q, int* iterations,
                                        double* residual, unsigned char* converged)
{
    const int t = b.tid(), nt = b.size();
    double part = 0.0;
    for (lanp_i64 i = t; i < L; i += nt) {
        const double y = rhs.at(i);
        z[i] = 0.0; r[i] = y; p[i] = y;
        part += y * y;
    }
    const double yy = b.sum(part);          // the sum's barriers also publish p
    const double threshold = tol * tol * yy;
    double rr = yy;
    int it = 0;
    while (it < maxiter && rr > threshold) {
        const lanp_i64 reach = k == 0 ? L : (lanp_i64)(it + 1) * k;
        part = 0.0;
        for (lanp_i64 i = t; i < L; i += nt) {
            if (!rhs.reaches(i, reach)) continue;
            const double qi = lanp_apply_row(S, width, k, L, alpha, p, i);
            q[i] = qi;
            part += p[i] * qi;
        }
        const double pq = b.sum(part);
        if (!(pq > 0.0)) break;             // exact breakdown (r == 0) or lost definiteness
        const double step = rr / pq;
        part = 0.0;
        for (lanp_i64 i = t; i < L; i += nt) {
            if (!rhs.reaches(i, reach)) continue;
            z[i] += step * p[i];
            r[i] -= step * q[i];
            part += r[i] * r[i];
        }
        const double rr_new = b.sum(part);
        const double beta = rr_new / rr;
        for (lanp_i64 i = t; i < L; i += nt)
            if (rhs.reaches(i, reach)) p[i] = r[i] + beta * p[i];
        b.sync();
        rr = rr_new;
        ++it;
    }
    b.sync();
    part = 0.0;
    const lanp_i64 reach = k == 0 ? L : (lanp_i64)(it + 1) * k;   // where (I - alpha S) z may be nonzero
    for (lanp_i64 i = t; i < L; i += nt) {
        if (!rhs.reaches(i, reach)) continue;
        const double e = rhs.at(i) - lanp_apply_row(S, width, k, L, alpha, z, i);
        part += e * e;
    }
    const double res = b.sum(part);
    if (t == 0) {
        *iterations = it;
        *residual = yy > 0.0 ? sqrt(res / yy) : 0.0;
        *converged = rr <= threshold ? 1 : 0;
    }
}

// ---------------------------------------------------------------------------------------------
// work items: one CUDA block each

// items (n, 6) int64 rows: video, r0, r1, norms offset, lse offset, halo offset (into the scratch
// buffers); built by lanp.kernels.cuda.plan.similarity_plan. band 0 = dense.
template <typename T>
__host__ __device__ void lanp_similarity_item(const LanpBlock& b, lanp_i64 item, const T* x,
                                              lanp_i64 D, const lanp_i64* offsets,
                                              const lanp_i64* graph_offsets, const lanp_i64* items,
                                              int band, int distance, int normalize,
                                              double inv_two_sigma2, double temporal_scale,
                                              double* values, double* norm_buf, double* lse_buf,
                                              double* halo_buf, int* bad_key)
{
    const lanp_i64* it = items + 6 * item;
    const lanp_i64 v = it[0], r0 = it[1], r1 = it[2];
    const lanp_i64 a = offsets[v], L = offsets[v + 1] - a;
    double* own = band == 0 ? values + graph_offsets[v] + r0 * L
                            : values + (a + r0) * (2 * (lanp_i64)band + 1);
    lanp_similarity_rows<T>(b, x + a * D, D, L, r0, r1, band, distance, normalize, inv_two_sigma2,
                            temporal_scale, own, halo_buf + it[5], norm_buf + it[3],
                            lse_buf + it[4], bad_key + v);
}

// Video v's right-hand side: its seeds, or y[offsets[v]:offsets[v+1]] of a packed y (y != 0)
__host__ __device__ inline LanpRhs lanp_video_rhs(lanp_i64 v, lanp_i64 a, const lanp_i64* seeds,
                                                  const lanp_i64* seed_offsets, const double* y)
{
    const LanpRhs rhs = {seeds + seed_offsets[v], (int)(seed_offsets[v + 1] - seed_offsets[v]),
                         y ? y + a : 0};
    return rhs;
}

// CG of video v on a graph in the layout above (band 0 = dense); r, p, q: scratch (N,); y: the
// packed right-hand side (N,), or 0 for the seeds
__host__ __device__ inline void lanp_solve_video(const LanpBlock& b, lanp_i64 v,
                                                 const double* values, const lanp_i64* offsets,
                                                 const lanp_i64* graph_offsets, int band,
                                                 const lanp_i64* seeds,
                                                 const lanp_i64* seed_offsets, const double* y,
                                                 double alpha, double tol, int maxiter, double* z,
                                                 double* r, double* p, double* q, int* iterations,
                                                 double* residual, unsigned char* converged)
{
    const lanp_i64 a = offsets[v], L = offsets[v + 1] - a;
    const double* S = band == 0 ? values + graph_offsets[v] : values + a * (2 * (lanp_i64)band + 1);
    const lanp_i64 width = band == 0 ? L : 2 * (lanp_i64)band + 1;
    lanp_cg(b, S, width, band, L, lanp_video_rhs(v, a, seeds, seed_offsets, y), alpha, tol,
            maxiter, z + a, r + a, p + a, q + a, iterations + v, residual + v, converged + v);
}

// Bytes of scratch the fused short-video path needs for a video of length L (doubles):
// S (L x width) + norms, lse, r, p, q (L each), width = L (dense) or 2 min(k, L-1) + 1.
__host__ __device__ inline lanp_i64 lanp_fused_doubles(lanp_i64 L, int band)
{
    const lanp_i64 k = band == 0 ? 0 : lanp_min(band, L - 1);
    const lanp_i64 width = k == 0 ? L : 2 * k + 1;
    return L * width + 5 * L;
}

// Fused similarity + CG of video videos[item] with every intermediate in ``scratch``
// (shared memory on the device). z is written as double at the video's rows. y: the packed
// right-hand side (N,), or 0 for the seeds.
template <typename T>
__host__ __device__ void lanp_fused_video(const LanpBlock& b, lanp_i64 item, const T* x,
                                          lanp_i64 D, const lanp_i64* offsets,
                                          const lanp_i64* videos, int band, int distance,
                                          int normalize, double inv_two_sigma2,
                                          double temporal_scale, const lanp_i64* seeds,
                                          const lanp_i64* seed_offsets, const double* y,
                                          double alpha, double tol, int maxiter,
                                          double* scratch, double* z, int* iterations,
                                          double* residual, unsigned char* converged,
                                          int* bad_key)
{
    const lanp_i64 v = videos[item];
    const lanp_i64 a = offsets[v], L = offsets[v + 1] - a;
    const int k = band == 0 ? 0 : (int)lanp_min(band, L - 1);   // L == 1: k = 0, S = [0]
    const lanp_i64 width = k == 0 ? L : 2 * (lanp_i64)k + 1;
    double* S = scratch;
    double* norms = S + L * width;
    double* lse = norms + L;
    double* r = lse + L;
    double* p = r + L;
    double* q = p + L;
    lanp_similarity_rows<T>(b, x + a * D, D, L, 0, L, k, distance, normalize, inv_two_sigma2,
                            temporal_scale, S, S, norms, lse, bad_key + v);
    lanp_cg(b, S, width, k, L, lanp_video_rhs(v, a, seeds, seed_offsets, y), alpha, tol, maxiter,
            z + a, r, p, q, iterations + v, residual + v, converged + v);
}

// ---------------------------------------------------------------------------------------------
// __global__ wrappers (grid = work items, block = LANP_BLOCK threads)

#define LANP_SIMILARITY_KERNEL(NAME, T)                                                          \
    extern "C" __global__ void __launch_bounds__(LANP_BLOCK) NAME(                              \
        const T* x, lanp_i64 D, const lanp_i64* offsets, const lanp_i64* graph_offsets,          \
        const lanp_i64* items, int band, int distance, int normalize, double inv_two_sigma2,     \
        double temporal_scale, double* values, double* norm_buf, double* lse_buf,                \
        double* halo_buf, int* bad_key)                                                          \
    {                                                                                            \
        __shared__ double red[LANP_BLOCK];                                                       \
        const LanpBlock b = {red};                                                               \
        lanp_similarity_item<T>(b, (lanp_i64)blockIdx.x, x, D, offsets, graph_offsets, items,    \
                                band, distance, normalize, inv_two_sigma2, temporal_scale,       \
                                values, norm_buf, lse_buf, halo_buf, bad_key);                   \
    }

LANP_SIMILARITY_KERNEL(lanp_similarity_f32, float)
LANP_SIMILARITY_KERNEL(lanp_similarity_f64, double)

// CG: one block per video videos[blockIdx.x]. lanp_solve: y = 1 at the seeds; lanp_solve_y: the
// packed right-hand side y (N,) float64 (its last argument; seeds and seed_offsets unused, pass
// empty ones). Both run lanp_solve_video, which takes y or 0.
#define LANP_SOLVE_PARAMS                                                                        \
    const double* values, const lanp_i64* offsets, const lanp_i64* graph_offsets,                \
    const lanp_i64* videos, int band, const lanp_i64* seeds, const lanp_i64* seed_offsets,       \
    double alpha, double tol, int maxiter, double* z, double* r, double* p, double* q,           \
    int* iterations, double* residual, unsigned char* converged
#define LANP_SOLVE_BODY(Y)                                                                       \
    {                                                                                            \
        __shared__ double red[LANP_BLOCK];                                                       \
        const LanpBlock b = {red};                                                               \
        lanp_solve_video(b, videos[blockIdx.x], values, offsets, graph_offsets, band, seeds,     \
                         seed_offsets, Y, alpha, tol, maxiter, z, r, p, q, iterations, residual, \
                         converged);                                                             \
    }

extern "C" __global__ void __launch_bounds__(LANP_BLOCK) lanp_solve(LANP_SOLVE_PARAMS)
    LANP_SOLVE_BODY(0)
extern "C" __global__ void __launch_bounds__(LANP_BLOCK) lanp_solve_y(LANP_SOLVE_PARAMS,
                                                                      const double* y)
    LANP_SOLVE_BODY(y)

// Fused similarity + CG, one block per video videos[blockIdx.x]; dynamic shared memory: 8 * max
// over the launched videos of lanp_fused_doubles(L, band). lanp_fused_*: y = 1 at the seeds;
// lanp_fused_y_*: the packed right-hand side y (N,) float64, the last argument.
#define LANP_FUSED_PARAMS(T)                                                                     \
    const T* x, lanp_i64 D, const lanp_i64* offsets, const lanp_i64* videos, int band,           \
    int distance, int normalize, double inv_two_sigma2, double temporal_scale,                   \
    const lanp_i64* seeds, const lanp_i64* seed_offsets, double alpha, double tol,               \
    int maxiter, double* z, int* iterations, double* residual, unsigned char* converged,         \
    int* bad_key
#define LANP_FUSED_BODY(T, Y)                                                                    \
    {                                                                                            \
        __shared__ double red[LANP_BLOCK];                                                       \
        extern __shared__ double lanp_dynamic_smem[];                                            \
        const LanpBlock b = {red};                                                               \
        lanp_fused_video<T>(b, (lanp_i64)blockIdx.x, x, D, offsets, videos, band, distance,      \
                            normalize, inv_two_sigma2, temporal_scale, seeds, seed_offsets, Y,   \
                            alpha, tol, maxiter, lanp_dynamic_smem, z, iterations, residual,     \
                            converged, bad_key);                                                 \
    }
#define LANP_FUSED_KERNEL(NAME, T)                                                               \
    extern "C" __global__ void __launch_bounds__(LANP_BLOCK) NAME(LANP_FUSED_PARAMS(T))         \
        LANP_FUSED_BODY(T, 0)
#define LANP_FUSED_Y_KERNEL(NAME, T)                                                             \
    extern "C" __global__ void __launch_bounds__(LANP_BLOCK) NAME(LANP_FUSED_PARAMS(T),         \
                                                                  const double* y)               \
        LANP_FUSED_BODY(T, y)

LANP_FUSED_KERNEL(lanp_fused_f32, float)
LANP_FUSED_KERNEL(lanp_fused_f64, double)
LANP_FUSED_Y_KERNEL(lanp_fused_y_f32, float)
LANP_FUSED_Y_KERNEL(lanp_fused_y_f64, double)

// ---------------------------------------------------------------------------------------------
// host twins: the same functions over the whole grid, one thread per block (ctypes, tests)

#ifndef __CUDACC_RTC__

#define LANP_SIMILARITY_HOST(NAME, T)                                                            \
    extern "C" void NAME(const T* x, lanp_i64 D, const lanp_i64* offsets,                        \
                         const lanp_i64* graph_offsets, const lanp_i64* items, lanp_i64 n_items, \
                         int band, int distance, int normalize, double inv_two_sigma2,           \
                         double temporal_scale, double* values, double* norm_buf,                \
                         double* lse_buf, double* halo_buf, int* bad_key)                        \
    {                                                                                            \
        const LanpBlock b = {0};                                                                 \
        for (lanp_i64 t = 0; t < n_items; ++t)                                                   \
            lanp_similarity_item<T>(b, t, x, D, offsets, graph_offsets, items, band, distance,   \
                                    normalize, inv_two_sigma2, temporal_scale, values, norm_buf, \
                                    lse_buf, halo_buf, bad_key);                                 \
    }

LANP_SIMILARITY_HOST(lanp_similarity_f32_host, float)
LANP_SIMILARITY_HOST(lanp_similarity_f64_host, double)

// lanp_solve(_y)'s arguments with the grid size n_videos after ``videos`` (y last, as there)
#define LANP_SOLVE_HOST_PARAMS                                                                   \
    const double* values, const lanp_i64* offsets, const lanp_i64* graph_offsets,                \
    const lanp_i64* videos, lanp_i64 n_videos, int band, const lanp_i64* seeds,                  \
    const lanp_i64* seed_offsets, double alpha, double tol, int maxiter, double* z, double* r,   \
    double* p, double* q, int* iterations, double* residual, unsigned char* converged
#define LANP_SOLVE_HOST_BODY(Y)                                                                  \
    {                                                                                            \
        const LanpBlock b = {0};                                                                 \
        for (lanp_i64 t = 0; t < n_videos; ++t)                                                  \
            lanp_solve_video(b, videos[t], values, offsets, graph_offsets, band, seeds,          \
                             seed_offsets, Y, alpha, tol, maxiter, z, r, p, q, iterations,       \
                             residual, converged);                                               \
    }

extern "C" void lanp_solve_host(LANP_SOLVE_HOST_PARAMS) LANP_SOLVE_HOST_BODY(0)
extern "C" void lanp_solve_y_host(LANP_SOLVE_HOST_PARAMS, const double* y) LANP_SOLVE_HOST_BODY(y)

// lanp_fused_(y_)*'s arguments with the grid size n_items after ``videos`` and the scratch
// (shared memory on the device) before z (y last, as there)
#define LANP_FUSED_HOST_PARAMS(T)                                                                \
    const T* x, lanp_i64 D, const lanp_i64* offsets, const lanp_i64* videos, lanp_i64 n_items,   \
    int band, int distance, int normalize, double inv_two_sigma2, double temporal_scale,         \
    const lanp_i64* seeds, const lanp_i64* seed_offsets, double alpha, double tol, int maxiter,  \
    double* scratch, double* z, int* iterations, double* residual, unsigned char* converged,     \
    int* bad_key
#define LANP_FUSED_HOST_BODY(T, Y)                                                               \
    {                                                                                            \
        const LanpBlock b = {0};                                                                 \
        for (lanp_i64 t = 0; t < n_items; ++t)                                                   \
            lanp_fused_video<T>(b, t, x, D, offsets, videos, band, distance, normalize,          \
                                inv_two_sigma2, temporal_scale, seeds, seed_offsets, Y, alpha,   \
                                tol, maxiter, scratch, z, iterations, residual, converged,       \
                                bad_key);                                                        \
    }

extern "C" void lanp_fused_f32_host(LANP_FUSED_HOST_PARAMS(float)) LANP_FUSED_HOST_BODY(float, 0)
extern "C" void lanp_fused_f64_host(LANP_FUSED_HOST_PARAMS(double)) LANP_FUSED_HOST_BODY(double, 0)
extern "C" void lanp_fused_y_f32_host(LANP_FUSED_HOST_PARAMS(float), const double* y)
    LANP_FUSED_HOST_BODY(float, y)
extern "C" void lanp_fused_y_f64_host(LANP_FUSED_HOST_PARAMS(double), const double* y)
    LANP_FUSED_HOST_BODY(double, y)

extern "C" lanp_i64 lanp_fused_doubles_host(lanp_i64 L, int band)
{
    return lanp_fused_doubles(L, band);
}

#endif  // __CUDACC_RTC__

// =============================================================================================
// Normality across videos: GPU twins of lanp.kernels.cpu.neighbours (anchor_neighbours) and
// lanp.kernels.cpu.csr (solve_csr's checks and matvec). The cupy backend
// (cuda/crossvideo_cupy.py) runs anchor_neighbours' dot products as one cuBLAS matmul per chunk of
// rows and solve_csr's CG loop in cuda/csr_cg.py around these kernels.
//
// anchor_neighbours, per snippet row i of global video v(i), anchors a with videos anchor_video[a]:
//     inv_i = 1 / ||x_i||                            (double sum of squares)
//     keep the k largest sims[i, a] * inv_i over anchor_video[a] != v(i) (sims = x . unit anchors
//          in the compute dtype), largest first, ties to the lower anchor; -1 / -inf unfilled;
//     then the kept ones again in double, (x_i . unit_a) * inv_i, re-sorted the same way.
// solve_csr, W in CSR (indptr, indices int64, data double), dinv_i = (sum_j W_ij)^-1/2 (0 for
// degree 0): q_i = p_i - alpha dinv_i sum_e data[e] u[indices[e]], u = dinv * p; and the per-row
// check of W (codes LANP_CSR_*): key = LANP_CSR_KEY_STRIDE * entry + code of the row's first bad
// entry, LANP_NO_BAD_ENTRY for a good row.
//
// Every body is a __host__ __device__ function of one row; the kernels give each thread rows in
// a grid-stride loop, the extern "C" *_host twins run the same loop on one CPU thread
// (tests/test_crossvideo_cuda_host.py).

#if !defined(LANP_CSR_COLUMN_RANGE) || !defined(LANP_CSR_UNSORTED) || !defined(LANP_CSR_BAD_WEIGHT) || \
    !defined(LANP_CSR_DIAGONAL) || !defined(LANP_CSR_ASYMMETRIC) || !defined(LANP_CSR_KEY_STRIDE) ||  \
    !defined(LANP_NO_BAD_ENTRY)
#error "compile with the codes of lanp.kernels.codes.cuda_options(), e.g. -DLANP_CSR_KEY_STRIDE=8"
#endif

// ---------------------------------------------------------------------------------------------
// anchor_neighbours: one row per call

template <typename T>
__host__ __device__ void cv_inverse_norm_row(const T* x, lanp_i64 D, double dtype_max, double* inv, signed char* status)
{
    double acc = 0.0;
    for (lanp_i64 d = 0; d < D; ++d) {
        const double v = (double)x[d];
        acc += v * v;
    }
    if (!lanp_finite(acc) || acc > dtype_max) { *status = LANP_NONFINITE; *inv = 0.0; }
    else if (acc == 0.0) { *status = LANP_ZERO; *inv = 0.0; }
    else { *status = LANP_OK; *inv = 1.0 / sqrt(acc); }
}

// twin of cpu/neighbours.topk_row
template <typename T>
__host__ __device__ void cv_topk_row(const T* sims, lanp_i64 A, double scale, lanp_i64 video,
                                     const lanp_i64* anchor_video, int k, lanp_i64* index, double* similarity)
{
    for (int j = 0; j < k; ++j) { index[j] = -1; similarity[j] = lanp_neg_inf(); }
    double worst = lanp_neg_inf();
    for (lanp_i64 a = 0; a < A; ++a) {
        const double s = (double)sims[a] * scale;
        if (!(s > worst) || anchor_video[a] == video) continue;
        int j = k - 1;
        while (j > 0 && s > similarity[j - 1]) {
            similarity[j] = similarity[j - 1];
            index[j] = index[j - 1];
            --j;
        }
        similarity[j] = s;
        index[j] = a;
        worst = similarity[k - 1];
    }
}

// twin of cpu/neighbours.rescore_row
template <typename T>
__host__ __device__ void cv_rescore_row(const T* row, lanp_i64 D, double scale, const double* unit, int k,
                                        lanp_i64* index, double* similarity)
{
    for (int j = 0; j < k; ++j) {
        if (index[j] < 0) continue;
        const double* u = unit + index[j] * D;
        double acc = 0.0;
        for (lanp_i64 d = 0; d < D; ++d) acc += (double)row[d] * u[d];
        similarity[j] = acc * scale;
    }
    for (int j = 1; j < k; ++j) {
        const lanp_i64 a = index[j];
        const double s = similarity[j];
        if (a < 0) break;
        int m = j;
        while (m > 0 && (s > similarity[m - 1] || (s == similarity[m - 1] && a < index[m - 1]))) {
            similarity[m] = similarity[m - 1];
            index[m] = index[m - 1];
            --m;
        }
        similarity[m] = s;
        index[m] = a;
    }
}

// ---------------------------------------------------------------------------------------------
// solve_csr: one row per call (twins of cpu/csr.check_row, inverse_sqrt_degrees, apply)

__host__ __device__ inline double cv_mirror_weight(const lanp_i64* indptr, const lanp_i64* indices, const double* data,
                                                   lanp_i64 j, lanp_i64 i)
{
    lanp_i64 lo = indptr[j], hi = indptr[j + 1];
    while (lo < hi) {
        const lanp_i64 mid = (lo + hi) / 2;
        const lanp_i64 c = indices[mid];
        if (c < i) lo = mid + 1;
        else if (c > i) hi = mid;
        else return data[mid];
    }
    return 0.0;
}

__host__ __device__ inline lanp_i64 cv_csr_check_row(const lanp_i64* indptr, const lanp_i64* indices, const double* data,
                                                     lanp_i64 N, lanp_i64 i, int symmetry)
{
    lanp_i64 prev = -1;
    for (lanp_i64 e = indptr[i]; e < indptr[i + 1]; ++e) {
        const lanp_i64 j = indices[e];
        const double w = data[e];
        if (symmetry) {                     // (a column out of range never reads past row N)
            if (j < 0 || j >= N) return e * LANP_CSR_KEY_STRIDE + LANP_CSR_COLUMN_RANGE;
            if (j != i && w != cv_mirror_weight(indptr, indices, data, j, i))
                return e * LANP_CSR_KEY_STRIDE + LANP_CSR_ASYMMETRIC;
            continue;
        }
        if (j < 0 || j >= N) return e * LANP_CSR_KEY_STRIDE + LANP_CSR_COLUMN_RANGE;
        if (j <= prev) return e * LANP_CSR_KEY_STRIDE + LANP_CSR_UNSORTED;
        if (!(w >= 0.0 && lanp_finite(w))) return e * LANP_CSR_KEY_STRIDE + LANP_CSR_BAD_WEIGHT;
        if (j == i && w != 0.0) return e * LANP_CSR_KEY_STRIDE + LANP_CSR_DIAGONAL;
        prev = j;
    }
    return LANP_NO_BAD_ENTRY;
}

__host__ __device__ inline double cv_csr_inverse_sqrt_degree(const lanp_i64* indptr, const double* data, lanp_i64 i)
{
    double d = 0.0;
    for (lanp_i64 e = indptr[i]; e < indptr[i + 1]; ++e) d += data[e];
    return d > 0.0 ? 1.0 / sqrt(d) : 0.0;
}

__host__ __device__ inline double cv_csr_apply_row(const lanp_i64* indptr, const lanp_i64* indices, const double* data,
                                                   const double* dinv, double alpha, const double* p, const double* u,
                                                   lanp_i64 i)
{
    double s = 0.0;
    for (lanp_i64 e = indptr[i]; e < indptr[i + 1]; ++e) s += data[e] * u[indices[e]];
    return p[i] - alpha * dinv[i] * s;
}

// ---------------------------------------------------------------------------------------------
// kernels: a grid-stride loop over rows; host twins: the same loop on one thread

#ifdef __CUDA_ARCH__
#define CV_ROWS(r, R) for (lanp_i64 r = (lanp_i64)blockIdx.x * blockDim.x + threadIdx.x; r < (R); \
                           r += (lanp_i64)gridDim.x * blockDim.x)
#else
#define CV_ROWS(r, R) for (lanp_i64 r = 0; r < (R); ++r)
#endif

template <typename T>
__host__ __device__ void cv_inverse_norms(const T* x, lanp_i64 R, lanp_i64 D, double dtype_max, double* inv,
                                          signed char* status)
{
    CV_ROWS(r, R) cv_inverse_norm_row(x + r * D, D, dtype_max, inv + r, status + r);
}

template <typename T>
__host__ __device__ void cv_topk(const T* sims, const T* x, lanp_i64 R, lanp_i64 A, lanp_i64 D, const double* inv,
                                 const lanp_i64* row_video, const lanp_i64* anchor_video, const double* unit, int k,
                                 lanp_i64* index, double* similarity)
{
    CV_ROWS(r, R) {
        cv_topk_row(sims + r * A, A, inv[r], row_video[r], anchor_video, k, index + r * k, similarity + r * k);
        cv_rescore_row(x + r * D, D, inv[r], unit, k, index + r * k, similarity + r * k);
    }
}

__host__ __device__ inline void cv_csr_check(const lanp_i64* indptr, const lanp_i64* indices, const double* data,
                                             lanp_i64 N, int symmetry, lanp_i64* keys)
{
    CV_ROWS(i, N) keys[i] = cv_csr_check_row(indptr, indices, data, N, i, symmetry);
}

__host__ __device__ inline void cv_csr_degrees(const lanp_i64* indptr, const double* data, lanp_i64 N, double* dinv)
{
    CV_ROWS(i, N) dinv[i] = cv_csr_inverse_sqrt_degree(indptr, data, i);
}

__host__ __device__ inline void cv_csr_apply(const lanp_i64* indptr, const lanp_i64* indices, const double* data,
                                             const double* dinv, double alpha, const double* p, const double* u,
                                             double* q, lanp_i64 N)
{
    CV_ROWS(i, N) q[i] = cv_csr_apply_row(indptr, indices, data, dinv, alpha, p, u, i);
}

#define CV_KERNEL extern "C" __global__ void __launch_bounds__(LANP_BLOCK)

CV_KERNEL lanp_inverse_norms_f32(const float* x, lanp_i64 R, lanp_i64 D, double dtype_max, double* inv,
                                      signed char* status)
{ cv_inverse_norms(x, R, D, dtype_max, inv, status); }
CV_KERNEL lanp_inverse_norms_f64(const double* x, lanp_i64 R, lanp_i64 D, double dtype_max, double* inv,
                                      signed char* status)
{ cv_inverse_norms(x, R, D, dtype_max, inv, status); }
CV_KERNEL lanp_topk_f32(const float* sims, const float* x, lanp_i64 R, lanp_i64 A, lanp_i64 D, const double* inv,
                             const lanp_i64* row_video, const lanp_i64* anchor_video, const double* unit, int k,
                             lanp_i64* index, double* similarity)
{ cv_topk(sims, x, R, A, D, inv, row_video, anchor_video, unit, k, index, similarity); }
CV_KERNEL lanp_topk_f64(const double* sims, const double* x, lanp_i64 R, lanp_i64 A, lanp_i64 D, const double* inv,
                             const lanp_i64* row_video, const lanp_i64* anchor_video, const double* unit, int k,
                             lanp_i64* index, double* similarity)
{ cv_topk(sims, x, R, A, D, inv, row_video, anchor_video, unit, k, index, similarity); }
CV_KERNEL lanp_csr_check(const lanp_i64* indptr, const lanp_i64* indices, const double* data, lanp_i64 N,
                              int symmetry, lanp_i64* keys)
{ cv_csr_check(indptr, indices, data, N, symmetry, keys); }
CV_KERNEL lanp_csr_degrees(const lanp_i64* indptr, const double* data, lanp_i64 N, double* dinv)
{ cv_csr_degrees(indptr, data, N, dinv); }
CV_KERNEL lanp_csr_apply(const lanp_i64* indptr, const lanp_i64* indices, const double* data, const double* dinv,
                              double alpha, const double* p, const double* u, double* q, lanp_i64 N)
{ cv_csr_apply(indptr, indices, data, dinv, alpha, p, u, q, N); }

// ---------------------------------------------------------------------------------------------
// host twins (nvcc only): the same bodies over every row, for tests through ctypes

#ifndef __CUDACC_RTC__
extern "C" {
void lanp_inverse_norms_f32_host(const float* x, lanp_i64 R, lanp_i64 D, double dtype_max, double* inv, signed char* status)
{ cv_inverse_norms(x, R, D, dtype_max, inv, status); }
void lanp_inverse_norms_f64_host(const double* x, lanp_i64 R, lanp_i64 D, double dtype_max, double* inv, signed char* status)
{ cv_inverse_norms(x, R, D, dtype_max, inv, status); }
void lanp_topk_f32_host(const float* sims, const float* x, lanp_i64 R, lanp_i64 A, lanp_i64 D, const double* inv,
                        const lanp_i64* row_video, const lanp_i64* anchor_video, const double* unit, int k,
                        lanp_i64* index, double* similarity)
{ cv_topk(sims, x, R, A, D, inv, row_video, anchor_video, unit, k, index, similarity); }
void lanp_topk_f64_host(const double* sims, const double* x, lanp_i64 R, lanp_i64 A, lanp_i64 D, const double* inv,
                        const lanp_i64* row_video, const lanp_i64* anchor_video, const double* unit, int k,
                        lanp_i64* index, double* similarity)
{ cv_topk(sims, x, R, A, D, inv, row_video, anchor_video, unit, k, index, similarity); }
void lanp_csr_check_host(const lanp_i64* indptr, const lanp_i64* indices, const double* data, lanp_i64 N, int symmetry,
                         lanp_i64* keys)
{ cv_csr_check(indptr, indices, data, N, symmetry, keys); }
void lanp_csr_degrees_host(const lanp_i64* indptr, const double* data, lanp_i64 N, double* dinv)
{ cv_csr_degrees(indptr, data, N, dinv); }
void lanp_csr_apply_host(const lanp_i64* indptr, const lanp_i64* indices, const double* data, const double* dinv,
                         double alpha, const double* p, const double* u, double* q, lanp_i64 N)
{ cv_csr_apply(indptr, indices, data, dinv, alpha, p, u, q, N); }
}
#endif
