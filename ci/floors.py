"""The declared floors of pyproject.toml as a pip constraints file, for ci/floors.sh.

    python ci/floors.py [--extras test,plot,strict,mpi] > floors.txt   # name==floor, one a line
    python ci/floors.py --python                                   # "3.10", from requires-python

Every requirement of ``project.dependencies`` and of the named extras must carry a ``>=``
floor; one without a floor, or with a marker or a URL, is an error (exit 2) that names it,
so that a floor cannot be left out of the check.  The gpu extras (CuPy wheels for CUDA) are
not checked here: they need a GPU.  ``pip install --constraint floors.txt ".[test]"`` then
installs exactly those floors (transitive dependencies at whatever pip picks).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import tomllib  # novermin  (Python 3.11+)
except ImportError:  # Python 3.10: the backport, same API
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(.*?)\s*$")


def floor(requirement: str) -> tuple[str, str]:
    """``(name, lowest version)`` of a requirement string such as ``"numpy>=2.0"`` or
    ``"foo>=1.2,<3"``.  ValueError, naming the requirement, when it has no ``>=`` floor,
    carries a marker (``;``) or a URL (``@``), or pins with ``==``/``~=`` (then the floor is
    whatever that says, which this script does not guess)."""
    if ";" in requirement or "@" in requirement:
        raise ValueError(f"{requirement!r}: markers and URLs are not supported; expected 'name>=version'")
    m = _REQ.match(requirement)
    if not m:
        raise ValueError(f"{requirement!r}: not a requirement; expected 'name>=version'")
    name, _, spec = m.groups()
    lows = [s.strip()[2:].strip() for s in spec.split(",") if s.strip().startswith(">=")]
    if len(lows) != 1 or not lows[0]:
        raise ValueError(f"{requirement!r}: no floor; expected exactly one '>=version' (e.g. '{name}>=1.0')")
    return name, lows[0]


def constraints(pyproject: dict, extras: list[str]) -> list[str]:
    """``name==floor`` lines for the runtime dependencies and the given extras (KeyError
    naming an unknown extra; ValueError naming a requirement without a floor)."""
    project = pyproject["project"]
    known = project.get("optional-dependencies", {})
    reqs = list(project.get("dependencies", []))
    for extra in extras:
        if extra not in known:
            raise KeyError(f"no extra {extra!r} in pyproject.toml; it has: {', '.join(sorted(known))}")
        reqs += known[extra]
    pins: dict[str, str] = {}
    for r in reqs:
        name, low = floor(r)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if pins.setdefault(key, low) != low:
            raise ValueError(f"{key}: two different floors ({pins[key]} and {low}); declare one")
    return [f"{k}=={v}" for k, v in pins.items()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="test,plot,strict,mpi", help="comma-separated extras (default: %(default)s)")
    ap.add_argument("--python", action="store_true", help="print the oldest Python of requires-python")
    args = ap.parse_args(argv)
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    try:
        if args.python:
            rp = data["project"]["requires-python"]
            m = re.fullmatch(r"\s*>=\s*(\d+\.\d+)\s*", rp)
            if not m:
                raise ValueError(f"requires-python {rp!r}: expected '>=X.Y'")
            print(m.group(1))
            return 0
        extras = [e for e in args.extras.split(",") if e]
        print("\n".join(constraints(data, extras)))
    except (KeyError, ValueError) as e:
        print(f"ci/floors.py: {e.args[0]}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
