"""The documentation holds together: every page of docs/ is in the mkdocs nav and the index, and
every relative link in README.md and docs/ points at a file that exists (anchors not checked)."""
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
