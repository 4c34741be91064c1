"""The documentation holds together: every page of docs/ is in the mkdocs nav and the index, and
every relative link in README.md and docs/ points at a file that exists (anchors not checked), and
the compare page names every method."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")

if not DOCS.is_dir():                                  # an installed wheel without the source tree
    pytest.skip("no docs/ beside the tests", allow_module_level=True)


def test_every_page_is_in_the_nav_and_the_index():
    nav = (ROOT / "mkdocs.yml").read_text()
    index = (DOCS / "index.md").read_text()
    for page in sorted(p.name for p in DOCS.glob("*.md")):
        assert re.search(rf":\s*{re.escape(page)}\s*$", nav, re.M), f"{page} is not in mkdocs.yml's nav"
        if page != "index.md":
            assert f"]({page})" in index, f"{page} is not linked from docs/index.md"


@pytest.mark.parametrize("page", sorted([ROOT / "README.md", *DOCS.glob("*.md")], key=str), ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):               # http:, https:, mailto:
            continue
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_every_compare_method_has_a_row_in_the_method_table():
    """docs/compare.md's table of methods (before "Across synthetic worlds") names every method
    `lanp compare --methods` accepts."""
    from lanp.evaluation.compare import METHODS

    table = (DOCS / "compare.md").read_text().split("## Across synthetic worlds")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing = [m for m in METHODS if not any(f"`{m}`" in line.split("|")[1] for line in rows)]
    assert not missing, f"docs/compare.md's method table lacks {missing}"
