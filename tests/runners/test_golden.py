"""lanp-propagate's outputs equal the golden files written before the method-layer redesign.

Every dataset and every attribute (but the input path and the version) of every case in
tests/golden/cases.py: integers and strings exactly, floats within 1e-6 relative.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "golden"))
import cases  # noqa: E402

ALL = [*cases.CASES, *cases.SHARDED_CASES]


def assert_same(actual, expected, what):
    if isinstance(expected, (list, str, bytes)) or np.asarray(expected).dtype.kind in "biuOSU":
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), what
        return
    a, e = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    assert np.array_equal(np.isnan(a), np.isnan(e)), what
    ok = ~np.isnan(e)
    scale = np.maximum(np.abs(e[ok]), 1e-30)
    rel = np.max(np.abs(a[ok] - e[ok]) / scale, initial=0.0)
    assert rel <= 1e-6 or np.max(np.abs(a[ok] - e[ok]), initial=0.0) <= 1e-12, f"{what}: rel error {rel:.2e}"


@pytest.mark.parametrize("name", ALL)
def test_outputs_equal_the_golden_files(name, tmp_path):
    if name in cases.SHARDED_CASES:
        pytest.importorskip("distributed")
    for out in cases.run_case(name, tmp_path):
        data, attrs = cases.read_labels(out)
        gold_data, gold_attrs = cases.read_labels(cases.golden_path(name, out))
        assert sorted(data) == sorted(gold_data), f"{name}: datasets differ"
        for key in gold_data:
            assert_same(data[key], gold_data[key], f"{name}: dataset {key}")
        for key, default in cases.NEW_OPTION_DEFAULTS.items():
            assert key not in gold_attrs and attrs.pop(key) == default, f"{name}: new option {key}"
        assert sorted(attrs) == sorted(gold_attrs), (
            f"{name}: attributes differ: +{sorted(set(attrs) - set(gold_attrs))} -{sorted(set(gold_attrs) - set(attrs))}")
        for key in gold_attrs:
            assert_same(attrs[key], gold_attrs[key], f"{name}: attribute {key}")


def test_golden_compare_can_fail(tmp_path):
    """The comparison sees a change of one weight by 1e-5 relative."""
    out = cases.run_case("paper", tmp_path)[0]
    data, _ = cases.read_labels(out)
    changed = data["weight"].astype(np.float64)
    changed[3] *= 1 + 1e-5
    with pytest.raises(AssertionError):
        assert_same(changed, data["weight"], "weight")
