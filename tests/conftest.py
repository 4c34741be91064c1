import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))          # tests/reference.py and helpers


@pytest.fixture
def rng(request):
    """A fresh numpy Generator for every test, from a new seed each run (fresh random inputs);
    a failing test prints its seed, and LANP_TEST_SEED=<seed> repeats it."""
    seed = int(os.environ.get("LANP_TEST_SEED") or np.random.SeedSequence().entropy % 2 ** 32)
    request.node.user_properties.append(("rng_seed", seed))
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for name, value in item.user_properties:
            if name == "rng_seed":
                report.sections.append(("random seed", f"rng seed {value}: rerun with LANP_TEST_SEED={value}"))
