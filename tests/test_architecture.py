"""The package layout rules of docs/architecture.md, read from every module's imports (ast), so they stay true."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "posefix_video"

# modules at the package root that every group may import: they import no group themselves
SHARED = {"atomic", "cli", "config", "errors", "geometry", "keypoints", "records", "synthesis"}
# the top of the stack: may import everything, imported by pipelines/ only
TOP = {"demo"}
# group -> the groups it may import (besides itself and the shared root modules)
ALLOWED = {
    "net": set(),
    "io": set(),
    "eval": {"io"},
    "video": {"net", "io", "eval"},
    "synthetic": {"net", "io", "eval", "video"},
    "train": {"net", "io", "eval", "video", "synthetic"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every posefix_video module `path` imports (top-level or inside functions; TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):  # names imported only for type checkers create no run-time edge
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for b in node.body for n in ast.walk(b))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            submodules = {f"{mod}.{a.name}" for a in node.names}  # `from posefix_video.train import run`
            submodules = {c for c in submodules if (ROOT / Path(*c.split("."))).with_suffix(".py").is_file()
                          or (ROOT / Path(*c.split("."))).is_dir()}
            found |= submodules
            if len(submodules) < len(node.names):  # some names are attributes of `mod` itself
                found.add(mod)
    return {m for m in found if m == "posefix_video" or m.startswith("posefix_video.")}


def _group(module: str) -> str:
    """'posefix_video.net.refiner' -> 'net'; a root module -> its name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


MODULES = {_module_name(p): p for p in sorted(PKG.rglob("*.py"))}
EDGES = {m: _imports(p) - {m} for m, p in MODULES.items()}


def test_layout_groups_exist_and_root_is_small():
    for group in ALLOWED:
        init = PKG / group / "__init__.py"
        assert init.is_file(), f"{group}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{group}/__init__.py must say its job and what it may import"
    root = sorted(p.stem for p in PKG.glob("*.py") if p.stem != "__init__")
    assert set(root) <= SHARED | TOP, f"unexpected root modules: {set(root) - SHARED - TOP}"
    assert len(root) <= 10, root


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_downward(module):
    if module == "posefix_video":
        return  # the lazy public API: names resolved on use, no import at load time
    group = _group(module)
    bad = []
    for target in EDGES[module]:
        if target == "posefix_video" or target.startswith("posefix_video.pipelines"):
            bad.append(target)
            continue
        tgroup = _group(target)
        if tgroup == group or tgroup in SHARED:
            continue
        if group in TOP:
            continue
        if group in SHARED:
            bad.append(target)  # shared root modules import no group (and not the demo)
        elif tgroup in TOP or tgroup not in ALLOWED.get(group, set()):
            bad.append(target)
    assert not bad, f"{module} imports {sorted(bad)}, against the rules of docs/architecture.md"


def test_no_import_cycles():
    seen: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(m: str) -> None:
        seen[m] = 1
        stack.append(m)
        for t in sorted(EDGES.get(m, ())):
            t = t if t in MODULES else t.rpartition(".")[0]  # `from pkg import name` of a non-module name
            if t not in MODULES or t == "posefix_video":
                continue
            if seen.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                if not all(x == c or c.startswith(x + ".") or x.startswith(c + ".") for x, c in zip(cycle, cycle[1:])):
                    raise AssertionError("import cycle: " + " -> ".join(cycle))
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in MODULES:
        if m not in seen:
            visit(m)


def test_modules_are_small_or_say_why():
    long = []
    for m, p in MODULES.items():
        lines = p.read_text(encoding="utf-8").count("\n")
        doc = ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) or ""
        if lines > 450 and "Longer than" not in doc:
            long.append(f"{m} ({lines} lines)")
    assert not long, f"modules over 450 lines without a reason in their docstring: {long}"


def test_library_never_imports_pipelines():
    offenders = [m for m, e in EDGES.items() if any(t.startswith("pipelines") for t in e)]
    assert not offenders
    for m, p in MODULES.items():
        assert "import pipelines" not in p.read_text(encoding="utf-8") and "from pipelines" not in \
            p.read_text(encoding="utf-8"), m


def test_rules_catch_a_wrong_import(tmp_path, monkeypatch):
    """The checker itself: a net/ module importing video/ is reported."""
    bad = tmp_path / "posefix_video" / "net" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from posefix_video.video.stream import FrameStream\nfrom . import model\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _imports(bad)
    assert "posefix_video.video.stream" in found and "posefix_video.net" in found
    assert _group("posefix_video.video.stream") not in ALLOWED["net"]


def test_public_api_is_lazy_and_complete():
    code = (
        "import sys, posefix_video, posefix_video.io\n"
        "assert 'torch' not in sys.modules, 'importing posefix_video.io pulled in torch'\n"
        "from posefix_video import Refiner, refine_video, read_tracks, write_posetrack18, evaluate_posetrack_dirs\n"
        "from posefix_video.net.refiner import Refiner as R\n"
        "assert Refiner is R and callable(refine_video) and callable(read_tracks)\n"
        "import posefix_video as p\n"
        "missing = [n for n in p.__all__ if not hasattr(p, n)]\n"
        "assert not missing, missing\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
