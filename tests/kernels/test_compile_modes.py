"""The CPU kernels give the same bits however numba got their machine code: compiled in a process
that writes numba's disk cache, loaded from that cache, or compiled with caching off. With LLVM's
'reassoc' in the graph kernels' sums, the first of these gave other bits than the other two (11 of
24 outputs of this check: the paper's z, the dual and tri priors' labels), so a user's first run
disagreed with every later one; kernels/cpu/flags.py has FASTMATH_ORDERED for those kernels."""
import os
import subprocess
import sys

SCRIPT = r"""
import hashlib
import numpy as np
import scipy.sparse as sp
import lanp.kernels as K
from lanp.data.worlds import generate

h = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
d = generate("scenes", seed=3, train_videos=50, test_videos=2, dim=64)
x, off = d.train.features, d.train.offsets
out = {"dense": K.propagate(x, off, warn=False).z,
       "float64": K.propagate(x.astype(np.float64), off, warn=False).z,
       "window": K.propagate(x, off, window=5, warn=False).z,
       "rms-raw": K.propagate(x, off, distance="rms", normalize=False, warn=False).z}
seeds = np.stack([off[:-1], off[1:] - 1], 1).ravel()
video = np.repeat(np.arange(len(off) - 1), np.diff(off))
nb = K.anchor_neighbours(x, off, x[seeds], video[seeds], k=2)
out["anchors"] = nb.similarity
rng = np.random.default_rng(0)
W = sp.random(400, 400, density=0.05, random_state=rng, format="csr")
W = ((W + W.T) / 2).tocsr()
W.setdiag(0.0); W.eliminate_zeros(); W.sum_duplicates(); W.sort_indices()
out["csr"] = K.solve_csr(W.indptr.astype(np.int64), W.indices.astype(np.int64), W.data.astype(np.float64),
                         rng.random(400), warn=False).z
print(" ".join(f"{k}:{h(v)}" for k, v in out.items()))
"""


def run(env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env.update(env_extra)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(item.split(":") for item in done.stdout.split())


def test_fresh_compile_cache_load_and_no_cache_give_the_same_bits(tmp_path):
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    writing = run(cache)                       # compiles everything and writes the cache
    assert any((tmp_path / "numba").rglob("*.nbi")), "the first run wrote no cache: the check would be void"
    loaded = run(cache)                        # loads every kernel from that cache
    assert loaded == writing
    assert run({"NUMBA_DISABLE_CACHING": "1"}) == writing
