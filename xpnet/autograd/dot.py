"""The computational graph behind a tensor, as Graphviz DOT text.

``to_dot(z)`` walks ``z.creator`` and each Function's ``.inputs`` back to the
leaves and returns plain DOT text (no graphviz package needed): one box per
tensor (name or ``#n``, shape, dtype), one ellipse per Function (its class
name: ``Mul``, ``Matmul``, ``Linear``...), edges input -> function -> output.
Leaves that require grad are filled blue, the output is drawn bold, and
non-tensor inputs (Python scalars, raw arrays) are grey constants.

A graph freed by ``backward()`` (without ``retain_graph=True``) has lost its
Functions' inputs: it is drawn up to the freed point, where the Function is
dashed and labelled ``(freed by backward)``; nothing before it can be known.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .. import backend as B
from .tensor import Tensor

__all__ = ["to_dot", "save_dot"]


def _quote(s) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _name_table(names) -> dict:
    """``{id(tensor): name}`` from ``{tensor: name}`` (or ``{name: tensor}``, e.g. named_parameters())."""
    table = {}
    for k, v in dict(names or {}).items():
        t, name = (v, k) if isinstance(k, str) and isinstance(v, Tensor) else (k, v)
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot(names=...): expected {{tensor: name}}, got a key of type {type(t).__name__}")
        table[id(t)] = str(name)
    return table


def to_dot(tensor: Tensor, names=None, rankdir: str = "TB") -> str:
    """The graph that computed ``tensor`` as Graphviz DOT text.

    ``names`` maps tensors to labels (``{w: "w"}``; ``dict(model.named_parameters())``
    works too); other tensors are numbered ``#0, #1, ...`` in the order they
    are found from the output.  Render with ``dot -Tpng g.dot -o g.png``.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot() needs an xpnet Tensor, got {type(tensor).__name__}")
    table = _name_table(names)
    lines = ["digraph xpnet {", f"  rankdir={rankdir};", '  node [fontname="Helvetica", fontsize=10];']
    nodes: dict = {}  # id(tensor) -> DOT node id; the graph keeps them alive
    count = {"tensor": 0, "node": 0}

    def new_node() -> str:
        count["node"] += 1
        return f"n{count['node']}"

    def tensor_node(t: Tensor) -> str:
        if id(t) not in nodes:
            node = nodes[id(t)] = new_node()
            label = table.get(id(t))
            if label is None:
                label = f"#{count['tensor']}"
                count["tensor"] += 1
            style = ', style=filled, fillcolor="lightblue"' if t.creator is None and t.requires_grad else ""
            style += ", penwidth=2" if t is tensor else ""
            label = "\n".join((label, str(t.shape), B.dtype_name(t.dtype)))
            lines.append(f"  {node} [label={_quote(label)}, shape=box{style}];")
        return nodes[id(t)]

    def const_node(x) -> str:  # one node per use: a shared ``2`` would only tangle the picture
        node = new_node()
        label = f"const {tuple(x.shape)} {B.dtype_name(x.dtype)}" if hasattr(x, "shape") else repr(x)
        lines.append(f"  {node} [label={_quote(label)}, shape=plaintext, fontcolor=gray40];")
        return node

    tensor_node(tensor)
    stack = [tensor]
    while stack:
        out = stack.pop()
        f = out.creator
        if f is None:
            continue
        fnode = new_node()  # each Function is reached once: through its one output
        name = type(f).__name__
        if f.inputs is None:
            lines.append(f"  {fnode} [label={_quote(name + ' (freed by backward)')}, style=dashed];")
        else:
            lines.append(f'  {fnode} [label={_quote(name)}, style=filled, fillcolor="lightyellow"];')
            for x in f.inputs:
                if isinstance(x, Tensor):
                    if id(x) not in nodes:
                        stack.append(x)
                    lines.append(f"  {tensor_node(x)} -> {fnode};")
                elif x is not None:
                    lines.append(f"  {const_node(x)} -> {fnode} [color=gray60];")
        lines.append(f"  {fnode} -> {nodes[id(out)]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def save_dot(tensor: Tensor, path, names=None, render: bool = False):
    """Write ``to_dot(tensor, names)`` to ``path`` and return ``path``.

    With ``render=True`` the Graphviz ``dot`` program (if installed) also
    writes a PNG next to it (``path`` with suffix ``.png``), whose path is
    returned; without ``dot`` a RuntimeError says what to install.
    """
    text = to_dot(tensor, names)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    if not render:
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            f"save_dot(render=True): the Graphviz 'dot' program was not found on PATH; the DOT text "
            f"was written to {os.fspath(path)!r}: install Graphviz (e.g. apt install graphviz) to render it")
    png = os.path.splitext(os.fspath(path))[0] + ".png"
    subprocess.run([exe, "-Tpng", os.fspath(path), "-o", png], check=True, capture_output=True)
    return png
