"""FeatureFile.read with reuse=True: the same values as a fresh read, one kept buffer (grown when a
later chunk is larger), for (N, D) and (N, C, D) packed files and every dtype conversion."""
import numpy as np
import pytest

from lanp.data.io import FeatureFile, write_h5


@pytest.mark.parametrize("crops", [None, 3])
@pytest.mark.parametrize("file_dtype, dtype", [(np.float32, np.float32), (np.float32, np.float64),
                                               (np.float16, np.float32)])
def test_reuse_reads_equal_fresh_reads(tmp_path, crops, file_dtype, dtype, rng):
    lengths = rng.integers(1, 40, size=12)
    shape = (int(lengths.sum()),) + ((crops,) if crops else ()) + (8,)
    x = rng.normal(size=shape).astype(file_dtype)
    write_h5(tmp_path / "f.h5", {"features": x, "offsets": np.concatenate([[0], np.cumsum(lengths)])})
    with FeatureFile(tmp_path / "f.h5") as ff:
        ranges = [(0, 2), (2, 9), (9, 10), (10, 12), (0, 12)]          # grows, shrinks, grows again
        for v0, v1 in ranges:
            fresh, off = ff.read(v0, v1, dtype=dtype, crops="keep")
            again, off2 = ff.read(v0, v1, dtype=dtype, crops="keep", reuse=True)
            assert np.array_equal(again, fresh) and np.array_equal(off, off2) and again.dtype == dtype
            mean, _ = ff.read(v0, v1, dtype=dtype)
            assert np.array_equal(ff.read(v0, v1, dtype=dtype, reuse=True)[0], mean)


def test_reuse_keeps_one_buffer(tmp_path):
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    write_h5(tmp_path / "f.h5", {"features": x, "offsets": np.array([0, 5, 12, 20])})
    with FeatureFile(tmp_path / "f.h5") as ff:
        a, _ = ff.read(1, 3, reuse=True)                 # 15 rows
        b, _ = ff.read(0, 1, reuse=True)                 # 5 rows: the same memory
        assert np.shares_memory(a, b) and np.array_equal(b, x[:5])
        assert np.array_equal(a[:5], x[:5])              # a was overwritten: valid until the next read
        c, _ = ff.read(0, 3, reuse=True)                 # 20 rows: a larger buffer
        assert np.array_equal(c, x) and not np.shares_memory(c, a)
        assert not np.shares_memory(ff.read(0, 1)[0], c)  # reuse=False never touches the buffer
