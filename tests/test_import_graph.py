"""The module graph of lanp/ and kernels/ (installed as lanp.kernels) has no import cycle, counting
function-level and relative imports, and lanp.kernels imports neither torch nor h5py."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = {"lanp": ROOT / "lanp", "lanp.kernels": ROOT / "kernels"}


def module_files():
    """{dotted module name: path} for every .py under the two trees (a package is its __init__)."""
    found = {}
    for package, folder in TREES.items():
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports_of(name: str, path: Path, modules: set) -> set:
    """Modules of ``modules`` that ``name`` imports anywhere in its file (module level, inside
    functions, relative or absolute). ``from P import x`` counts P.x when that is a module, else P."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()

    def add(target: str):
        while target and target not in modules:        # a name inside a module: the module
            target = target.rpartition(".")[0]
        if target and target != name:
            out.add(target)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                full = f"{source}.{alias.name}"
                add(full if full in modules else source)
    return out


def graph(prefix: str) -> dict:
    files = module_files()
    modules = set(files)
    return {m: sorted(t for t in imports_of(m, p, modules) if t.startswith(prefix))
            for m, p in files.items() if m.startswith(prefix)}


def find_cycle(edges: dict):
    """One cycle [a, b, ..., a] of the directed graph, or None (iterative DFS)."""
    state = {}
    for start in sorted(edges):
        if state.get(start):
            continue
        stack = [(start, iter(edges.get(start, ())))]
        path = [start]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
                path.pop()
            elif state.get(child) == 1:
                return path[path.index(child):] + [child]
            elif not state.get(child):
                state[child] = 1
                path.append(child)
                stack.append((child, iter(edges.get(child, ()))))
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_imports_are_resolved_relative_and_inside_functions(tmp_path):
    pkg = tmp_path / "p"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..c import g\n    from .. import c\n")
    (pkg / "c.py").write_text("import p.sub.b as B\n")
    modules = {"p", "p.sub", "p.sub.b", "p.c"}
    assert imports_of("p.sub", pkg / "sub" / "__init__.py", modules) == {"p.sub.b"}
    assert imports_of("p.sub.b", pkg / "sub" / "b.py", modules) == {"p.c"}
    assert imports_of("p.c", pkg / "c.py", modules) == {"p.sub.b"}


def test_kernels_have_no_import_cycle():
    edges = graph("lanp.kernels")
    assert len(edges) > 10 and "lanp.kernels.cpu.graph" in edges
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_kernels_import_nothing_from_the_method_layer():
    edges = graph("lanp")
    for module, targets in edges.items():
        if module.startswith("lanp.kernels"):
            outside = [t for t in targets if not t.startswith("lanp.kernels")]
            assert not outside, f"{module} imports {outside}"


def test_lanp_has_no_import_cycle():
    cycle = find_cycle(graph("lanp"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_kernels_import_alone_without_torch_or_h5py():
    code = ("import sys, lanp.kernels, lanp.kernels.official, lanp.kernels.cuda.plan; "
            "bad = sorted(m for m in ('torch', 'h5py') if m in sys.modules); "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, f"lanp.kernels imported {proc.stdout.strip()}:\n{proc.stderr}"


def test_every_kernels_package_and_cuda_source_is_in_the_wheel():
    """pyproject.toml lists every package of kernels/ (setuptools does not find them itself under
    package-dir), and ships the CUDA sources next to the module that compiles them."""
    import tomllib
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(config["packages"])
    for init in sorted((ROOT / "kernels").rglob("__init__.py")):
        parts = init.parent.relative_to(ROOT / "kernels").parts
        assert ".".join(["lanp.kernels", *parts]) in packages, init
    sources = {p.suffix for p in (ROOT / "kernels").rglob("*.cu*")}
    assert sources and sources <= {".cu", ".cuh"}
    assert {"*.cu", "*.cuh"} <= set(config["package-data"]["lanp.kernels.cuda"])
    assert not list((ROOT / "kernels").glob("*.cu*")), "CUDA sources belong in kernels/cuda/"
