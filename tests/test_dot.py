"""Graphviz DOT export of the computational graph (xpnet.autograd.dot)."""

import re
import shutil
import subprocess
from collections import Counter

import pytest

import xpnet as xn
from xpnet.autograd import dot
from xpnet.autograd.dot import save_dot, to_dot
from xpnet.nn.functional import linear

NODE = re.compile(r'^\s*(n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];$')
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+)( \[.*\])?;$")


def parse(text):
    """``(nodes {id: (label, attrs)}, edges [(a, b)])``, checking the DOT syntax line by line."""
    lines = text.strip().splitlines()
    assert lines[0] == "digraph xpnet {" and lines[-1] == "}"
    assert text.count("{") == text.count("}") == 1
    nodes, edges = {}, []
    for line in lines[1:-1]:
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"node declared twice: {line}"
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2)))
        else:
            assert line.strip().endswith(";") and "=" in line, f"not a DOT statement: {line!r}"
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} to an undeclared node"
    return nodes, edges


def kinds(nodes):
    """Function labels, tensor labels (first line) and constant labels."""
    funcs = [lab for lab, attrs in nodes.values() if "shape=box" not in attrs and "plaintext" not in attrs]
    tensors = [lab.split("\\n")[0] for lab, attrs in nodes.values() if "shape=box" in attrs]
    consts = [lab for lab, attrs in nodes.values() if "plaintext" in attrs]
    return funcs, tensors, consts


def expression(bk):
    w = xn.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    b = xn.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    return w, b, (2 * w + 3 * b) * (2 * b + 1)


def test_graph_of_expression(bk):
    w, b, z = expression(bk)
    nodes, edges = parse(to_dot(z, {w: "w", b: "b"}))
    funcs, tensors, consts = kinds(nodes)
    assert Counter(funcs) == {"Mul": 4, "Add": 2}
    # w, b, 2w, 3b, 2w+3b, 2b, 2b+1, z: each tensor once (b feeds two Muls through one node)
    assert len(tensors) == 8 and tensors.count("b") == 1 and tensors.count("w") == 1
    assert sorted(consts) == ["1", "2", "2", "3"]
    # every function has one edge per input plus one to its output: 6 * (2 + 1)
    assert len(edges) == 18
    by_label = {lab.split("\\n")[0]: (n, attrs) for n, (lab, attrs) in nodes.items() if "shape=box" in attrs}
    b_node = by_label["b"][0]
    assert sum(1 for a, _ in edges if a == b_node) == 2
    assert "lightblue" in by_label["w"][1] and "lightblue" in by_label["b"][1]
    assert "(2,)" in nodes[by_label["w"][0]][0] and "float64" in nodes[by_label["w"][0]][0]
    assert "penwidth=2" in by_label["#0"][1] and "lightblue" not in by_label["#0"][1]
    # the output is the end of the chain: the last Mul points at it, nothing leaves it
    z_node = by_label["#0"][0]
    assert [nodes[a][0] for a, c in edges if c == z_node] == ["Mul"]
    assert not [c for a, c in edges if a == z_node]


def test_layer_function_names_and_parameter_names(bk):
    x = xn.tensor([[1.0, 2.0, 3.0]], dtype="float64")
    W = xn.tensor([[1.0, 0.0, 1.0], [0.5, 1.0, 0.0]], dtype="float64", requires_grad=True)
    bias = xn.tensor([0.0, 1.0], dtype="float64", requires_grad=True)
    loss = xn.relu(linear(x, W, bias) @ W).sum()
    nodes, _ = parse(to_dot(loss, {"weight": W, "bias": bias, "x": x}))  # {name: tensor} also works
    funcs, tensors, _ = kinds(nodes)
    assert Counter(funcs) == {"Linear": 1, "Matmul": 1, "Relu": 1, "Sum": 1}
    assert sorted(tensors) == ["#0", "#1", "#2", "#3", "bias", "weight", "x"]
    attrs = {lab.split("\\n")[0]: a for lab, a in nodes.values()}
    assert "lightblue" in attrs["weight"] and "lightblue" not in attrs["x"]  # x needs no grad


def test_names_are_escaped(bk):
    w = xn.tensor([1.0], dtype="float64", requires_grad=True)
    nodes, _ = parse(to_dot(w * w, {w: 'the "w"\\'}))
    assert any(lab.startswith('the \\"w\\"\\\\') for lab, _ in nodes.values())


def test_freed_graph_is_drawn_up_to_the_freed_point(bk):
    w, b, z = expression(bk)
    z.sum().backward()
    nodes, edges = parse(to_dot(z))
    funcs, tensors, _ = kinds(nodes)
    assert funcs == ["Mul (freed by backward)"] and tensors == ["#0"] and len(edges) == 1
    # a new op on top of the freed graph: drawn down to z, whose creator is marked freed
    u = z * 3
    funcs, tensors, _ = kinds(parse(to_dot(u))[0])
    assert sorted(funcs) == ["Mul", "Mul (freed by backward)"] and len(tensors) == 2


def test_retained_graph_is_drawn_whole(bk):
    w, b, z = expression(bk)
    z.sum().backward(retain_graph=True)
    funcs, tensors, _ = kinds(parse(to_dot(z))[0])
    assert Counter(funcs) == {"Mul": 4, "Add": 2} and len(tensors) == 8


def test_leaf_and_bad_input(bk):
    w = xn.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    nodes, edges = parse(to_dot(w, {w: "w"}))
    assert len(nodes) == 1 and not edges
    with pytest.raises(TypeError, match="needs an xpnet Tensor"):
        to_dot(w.data)
    with pytest.raises(TypeError, match="expected {tensor: name}"):
        to_dot(w, {3: "w"})


def test_save_dot(tmp_path, monkeypatch):
    w, b, z = expression(None)
    p = tmp_path / "g.dot"
    assert save_dot(z, p, {w: "w"}) == p
    assert p.read_text() == to_dot(z, {w: "w"})
    monkeypatch.setattr(dot.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="Graphviz 'dot' program was not found"):
        save_dot(z, p, render=True)


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' is not installed")
def test_graphviz_accepts_and_renders_it(tmp_path):
    w, b, z = expression(None)
    subprocess.run(["dot", "-Tcanon"], input=to_dot(z, {w: 'w "1"'}), text=True, check=True, capture_output=True)
    png = save_dot(z, tmp_path / "g.dot", render=True)
    data = open(png, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
