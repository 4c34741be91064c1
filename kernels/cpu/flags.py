"""numba compile flags shared by every CPU kernel."""

# keep NaN/Inf semantics (no 'nnan'/'ninf'): -inf marks missing edges, NaN marks bad input
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# The graph kernels (graph.py, tiles.py, normalise.py, distances.py) without 'reassoc': with it, a
# process that compiled them while writing numba's disk cache got other last bits of W than every
# process that loaded them from that cache or compiled them with caching off (11 of 24 outputs of
# tests/kernels/test_compile_modes.py, the paper's z among them), so a user's first run disagreed
# with every later one. Without it: the same bits in all three, 0-5 % slower on the propagation
# benchmarks (UCF-32 27.1 against 26.9 ms; 200 x 400 x 256 81 against 77 ms). CG and CSR keep
# 'reassoc' (the same test holds for them; without it CG ran 45 % slower on 400-snippet videos).
FASTMATH_ORDERED = FASTMATH - {"reassoc"}
