"""ARCHITECTURE.md stays true: every path it names exists, and the backend's modules stay short."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAP = ROOT / "ARCHITECTURE.md"


def named_paths(text: str) -> list:
    """The repository paths in backticks: those with a slash or a file suffix (``xpnet/nn/``, ``ops.py``)."""
    out = []
    for token in re.findall(r"`([^`\s]+)`", text):
        if "/" in token or re.search(r"\.(py|md|sh)$", token):
            out.append(token)
    return out


def test_every_path_in_the_map_exists():
    text = MAP.read_text()
    paths = named_paths(text)
    assert len(paths) > 30  # the map names the files it talks about
    missing = []
    for p in paths:
        candidates = [ROOT / p, ROOT / "xpnet" / "backend" / p]  # backend modules are named bare
        if not any(c.exists() for c in candidates):
            missing.append(p)
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def test_the_path_check_notices_a_missing_path():
    assert named_paths("see `xpnet/nowhere.py` and `ops.py`, not `B.clip`") == ["xpnet/nowhere.py", "ops.py"]


def test_every_backend_module_is_in_the_map_and_short():
    text = MAP.read_text()
    for module in sorted((ROOT / "xpnet" / "backend").glob("*.py")):
        if module.name != "__init__.py":
            assert f"`{module.name}`" in text, f"ARCHITECTURE.md does not place xpnet/backend/{module.name}"
        lines = len(module.read_text().splitlines())
        assert lines <= 320, f"xpnet/backend/{module.name} has {lines} lines: split it by job (about 300 at most)"


# The layers of ARCHITECTURE.md, bottom first: a module may import its own layer and those below.
LAYERS = {"backend": 0, "autograd": 1, "nn": 2, "optim": 3, "amp": 4, "compile": 4, "distributed": 4,
          "data": 5, "checkpoint": 5, "plot": 5, "train": 6, "cli": 7}


def upward_imports(package: pathlib.Path) -> list:
    """``file: a -> b`` for every relative import (nested ones too) of a higher layer ``b`` from layer ``a``."""
    import ast
    bad = []
    for f in sorted(package.rglob("*.py")):
        rel = f.relative_to(package)
        if len(rel.parts) == 1 and rel.stem == "__init__":
            continue  # the top-level package gathers everything
        me = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        assert me in LAYERS, f"xpnet/{rel}: place {me!r} in a layer (tests/test_architecture.py, ARCHITECTURE.md)"
        for node in ast.walk(ast.parse(f.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level > 0):
                continue
            base = list(rel.parts[:-1])[:len(rel.parts) - node.level]
            target = base + (node.module.split(".") if node.module else [])
            for top in ([target[0]] if target else [a.name for a in node.names]):
                if top in LAYERS and LAYERS[top] > LAYERS[me]:
                    bad.append(f"xpnet/{rel}:{node.lineno}: {me} -> {top}")
    return bad


def test_nothing_imports_upward():
    bad = upward_imports(ROOT / "xpnet")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_the_layer_check_notices_an_upward_import(tmp_path):
    (tmp_path / "nn").mkdir()
    (tmp_path / "nn" / "layer.py").write_text("def f():\n    from ..train import Trainer\n")
    assert upward_imports(tmp_path) == ["xpnet/nn/layer.py:2: nn -> train"]
