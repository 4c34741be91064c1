"""numba compile flags shared by every CPU kernel."""

# keep NaN/Inf semantics (no 'nnan'/'ninf'): -inf marks missing edges, NaN marks bad input
FASTMATH = {"reassoc", "contract", "arcp", "nsz"}
