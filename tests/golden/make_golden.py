"""Write tests/golden/input.h5, the shards and tests/golden/expected/* from the current code.

Run only when a behaviour change is intended, and say so in the commit message.
"""
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cases  # noqa: E402


def main() -> None:
    cases.make_inputs()
    expected = cases.HERE / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    expected.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        for name in [*cases.CASES, *cases.SHARDED_CASES]:
            for out in cases.run_case(name, tmp):
                shutil.copy(out, cases.golden_path(name, out))
                print("wrote", cases.golden_path(name, out))


if __name__ == "__main__":
    main()
