"""The one table of codes every backend shares: distances, per-video status, the GPU bad-row key.

The numba kernels read these names at compile time; the CUDA C (``cuda/lanp.cu``) receives them as
``-D`` defines (:func:`cuda_options`, passed by cupy's RawModule and by tests/cuda_build.py's
nvcc), so no backend declares a code of its own.

| name                    | value | meaning                                                      |
| ----------------------- | ----- | ------------------------------------------------------------ |
| SQEUCLIDEAN             | 0     | Wf = exp(-||xi - xj||^2 / (2 sigma^2))                       |
| RMS                     | 1     | Wf = exp(-sqrt(||xi - xj||^2 / D) / (2 sigma^2))             |
| COSINE                  | 2     | Wf = max(cos(xi, xj), 0) (official-sht: cos, not clipped)    |
| STATUS_UNWRITTEN        | -1    | poison: the kernel never reached the video (a bug)           |
| STATUS_OK               | 0     | the video's outputs are written                              |
| STATUS_NONFINITE        | 1     | a snippet holds NaN/Inf (or a value too large to square)     |
| STATUS_ZERO             | 2     | an all-zero snippet where the distance needs a direction     |
| STATUS_NEGATIVE_DEGREE  | 3     | official-sht: a row's cosine similarities sum below 0        |
| STATUS_KEY_STRIDE       | 4     | GPU bad-row key = STATUS_KEY_STRIDE * snippet + status       |
| NO_BAD_ROW              | 2^31-1| initial GPU bad-row key: no bad snippet                      |
| CSR_OK                  | 0     | solve_csr: a row of W is well formed                         |
| CSR_COLUMN_RANGE        | 1     | a column index outside [0, N)                                |
| CSR_UNSORTED            | 2     | a row's column indices not strictly increasing (duplicates)  |
| CSR_BAD_WEIGHT          | 3     | a weight that is NaN, Inf or negative                        |
| CSR_DIAGONAL            | 4     | a nonzero diagonal weight W_ii                               |
| CSR_ASYMMETRIC          | 5     | W_ij != W_ji (bit for bit; a missing W_ji counts as 0)       |
| CSR_KEY_STRIDE          | 8     | bad-entry key = CSR_KEY_STRIDE * entry + CSR code (per row)  |
| NO_BAD_ENTRY            | 2^62  | a row's key when it has no bad entry                         |
"""
from __future__ import annotations

DISTANCES = ("sqeuclidean", "rms", "cosine")
SQEUCLIDEAN, RMS, COSINE = 0, 1, 2
DISTANCE_CODES = {"sqeuclidean": SQEUCLIDEAN, "rms": RMS, "cosine": COSINE}

STATUS_UNWRITTEN = -1
STATUS_OK, STATUS_NONFINITE, STATUS_ZERO, STATUS_NEGATIVE_DEGREE = 0, 1, 2, 3
STATUS_KEY_STRIDE = 4
NO_BAD_ROW = 2 ** 31 - 1

# solve_csr's per-row check of W (kernels/cpu/csr.py, cuda/lanp.cu): the first bad entry of
# a row as CSR_KEY_STRIDE * entry + code, NO_BAD_ENTRY for a good row; the smallest key is reported
CSR_OK, CSR_COLUMN_RANGE, CSR_UNSORTED, CSR_BAD_WEIGHT, CSR_DIAGONAL, CSR_ASYMMETRIC = 0, 1, 2, 3, 4, 5
CSR_KEY_STRIDE = 8
NO_BAD_ENTRY = 2 ** 62

# the names the CUDA C reads (it refuses to compile without them)
CUDA_DEFINES = {
    "LANP_SQEUCLIDEAN": SQEUCLIDEAN, "LANP_RMS": RMS, "LANP_COSINE": COSINE,
    "LANP_OK": STATUS_OK, "LANP_NONFINITE": STATUS_NONFINITE, "LANP_ZERO": STATUS_ZERO,
    "LANP_STATUS_KEY_STRIDE": STATUS_KEY_STRIDE,
    "LANP_CSR_COLUMN_RANGE": CSR_COLUMN_RANGE, "LANP_CSR_UNSORTED": CSR_UNSORTED,
    "LANP_CSR_BAD_WEIGHT": CSR_BAD_WEIGHT, "LANP_CSR_DIAGONAL": CSR_DIAGONAL,
    "LANP_CSR_ASYMMETRIC": CSR_ASYMMETRIC, "LANP_CSR_KEY_STRIDE": CSR_KEY_STRIDE,
    "LANP_NO_BAD_ENTRY": NO_BAD_ENTRY,
}


def cuda_options() -> tuple:
    """The codes as compiler options, e.g. ('-DLANP_SQEUCLIDEAN=0', ...), for NVRTC and nvcc."""
    return tuple(f"-D{name}={value}" for name, value in CUDA_DEFINES.items())
