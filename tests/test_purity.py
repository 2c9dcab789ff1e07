"""DESIGN rule 1: only the backend package (and host I/O code) imports concrete array libraries."""

import ast
import pathlib

import xpnet

FORBIDDEN = {"numpy", "cupy", "cupyx", "torch", "jax", "jaxlib"}
# Host I/O may touch NumPy: data files, checkpoints and plots live in host memory.
ALLOWED = {"backend", "data", "io.py", "checkpoint.py", "plot.py"}
# Communication engines that must speak a library's own collectives (xpnet.distributed.engines):
# NCCL is reached through cupy.cuda.nccl on CuPy arrays, torch.distributed takes torch tensors.
# Each file holds one engine behind the engine interface; nothing else in distributed/ imports them.
ALLOWED_FILES = {"distributed/engines/nccl.py", "distributed/engines/torch_dist.py"}
ROOT = pathlib.Path(xpnet.__file__).parent


def forbidden_imports(path: pathlib.Path):
    """``line: module`` for every import of an array library in ``path`` (nested ones too)."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        yield from (f"{node.lineno}: {n}" for n in names if n.split(".")[0] in FORBIDDEN)


def test_core_imports_no_array_library():
    bad = [f"{path.relative_to(ROOT.parent)}:{hit}"
           for path in sorted(ROOT.rglob("*.py")) if path.relative_to(ROOT).parts[0] not in ALLOWED
           and path.relative_to(ROOT).as_posix() not in ALLOWED_FILES
           for hit in forbidden_imports(path)]
    assert not bad, "array libraries imported outside the backend package:\n" + "\n".join(bad)


def test_the_scan_finds_nested_imports(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("import os\ndef f():\n    import torch.nn\n    from numpy import ones\n")
    assert list(forbidden_imports(f)) == ["3: torch.nn", "4: numpy"]


def test_clip_and_sign_go_through_the_backend():
    """array-api-compat's clip and sign assign through boolean masks on CuPy, a device sync
    each: the core calls backend.clip / backend.sign instead."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "backend":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("clip", "sign")
                    and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("B", "F"))):
                bad.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: .{node.func.attr}(...)")
    assert not bad, "use backend.clip / backend.sign:\n" + "\n".join(bad)
