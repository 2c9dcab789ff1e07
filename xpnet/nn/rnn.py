"""RNN, GRU, LSTM and their cells, with PyTorch's arguments, parameter names and gate order.

Each layer and direction projects the whole input sequence in one matmul
(``x W_ih^T + b_ih``), then runs the recurrence as one operation with a
hand-written backward (:mod:`.recurrent_scan`); an LSTM with ``proj_size``
runs it step by step from differentiable elementary operations.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd.functions import concat, stack, transpose, unsqueeze
from ..autograd.tensor import Tensor, _raw
from . import init
from .functional.dropout import dropout as _dropout
from .functional.linear import linear
from .linear import new_parameter
from .module import Module
from .recurrent_scan import lstm_step as _lstm_step
from .recurrent_scan import recurrent_scan

__all__ = ["RNNBase", "RNN", "GRU", "LSTM", "RNNCellBase", "RNNCell", "GRUCell", "LSTMCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _unbind(x):
    """``[x[0], ..., x[n-1]]``.  With a graph, split in halves first: each slice's
    gradient is a zero array of its parent's size, so halving makes the backward
    O(n log n) in the sequence length instead of O(n^2)."""
    n = x.shape[0]
    if n <= 4 or not (isinstance(x, Tensor) and x.requires_grad):
        return [x[t, ...] for t in range(n)]
    return _unbind(x[:n // 2, ...]) + _unbind(x[n // 2:, ...])


def _zeros(like, shape):
    r = _raw(like)
    xp = B.namespace_of(r)
    return Tensor(xp.zeros(shape, dtype=r.dtype, device=B.array_api_compat.device(r)))


def _as_tensor(x, ref):
    return x if isinstance(x, Tensor) else Tensor(B.as_array(x, None, B.backend_of(_raw(ref))))


def _check_dtype(name, x, p):
    if B.dtype_name(x.dtype) != B.dtype_name(p.dtype):
        raise TypeError(f"{name}: input is {B.dtype_name(x.dtype)} but the parameters are "
                        f"{B.dtype_name(p.dtype)}: convert one of them (tensor.astype / module.to(dtype=...))")


# ------------------------------------------------------------ multi-layer RNNs

class RNNBase(Module):
    """The common part of RNN, GRU and LSTM (``mode`` is RNN_TANH, RNN_RELU, GRU or LSTM).

    Parameters ``weight_ih_l{k}`` (G*H, in), ``weight_hh_l{k}`` (G*H, H),
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (G*H,), ``weight_hr_l{k}`` (P, H) for an
    LSTM with ``proj_size`` P, with the suffix ``_reverse`` for the backward
    direction; all drawn from U(-1/sqrt(H), 1/sqrt(H)).
    """

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=None, backend=None):
        super().__init__()
        name = f"{type(self).__name__}({input_size}, {hidden_size})"
        if mode not in _GATES:
            raise ValueError(f"{name}: unknown mode {mode!r}, expected one of {', '.join(_GATES)}")
        for what, v, lo in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                            ("num_layers", num_layers, 1), ("proj_size", proj_size, 0)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name}: {what} must be an integer >= {lo}, got {v!r}")
        if not 0.0 <= dropout <= 1.0 or isinstance(dropout, bool):
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is supported by LSTM only")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size {proj_size} must be smaller than hidden_size {hidden_size}")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size or hidden_size
        D = 2 if bidirectional else 1
        self._flat_weights_names = []
        for layer in range(num_layers):
            for suffix in ("", "_reverse")[:D]:
                layer_input = input_size if layer == 0 else real_hidden * D
                shapes = [("weight_ih", (gate_size, layer_input)), ("weight_hh", (gate_size, real_hidden))]
                if bias:
                    shapes += [("bias_ih", (gate_size,)), ("bias_hh", (gate_size,))]
                if proj_size:
                    shapes += [("weight_hr", (proj_size, hidden_size))]
                for stem, shape in shapes:
                    pname = f"{stem}_l{layer}{suffix}"
                    setattr(self, pname, new_parameter(shape, dtype, backend))
                    self._flat_weights_names.append(pname)
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    @property
    def all_weights(self):
        """Per layer and direction, its parameters in PyTorch's order."""
        per = len(self._flat_weights_names) // (self.num_layers * (2 if self.bidirectional else 1))
        ws = [getattr(self, n) for n in self._flat_weights_names]
        return [ws[i:i + per] for i in range(0, len(ws), per)]

    def flatten_parameters(self):
        """Nothing to do (PyTorch packs weights for cuDNN here); kept so that PyTorch code runs."""

    def _weights(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        get = lambda stem: self._parameters.get(stem + suffix)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")

    def _name(self):
        extra = f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra})"

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s

    def _check_state(self, h, what, size, N, batched, x):
        shape = (self.num_layers * (2 if self.bidirectional else 1),) + ((N,) if batched else ()) + (size,)
        h = _as_tensor(h, x)
        if tuple(h.shape) != shape:
            layout = "(num_layers * num_directions, batch, size)" if batched else \
                "(num_layers * num_directions, size) for unbatched input"
            raise ValueError(f"{self._name()}: {what} has shape {tuple(h.shape)}, expected {shape} {layout}")
        return h if batched else unsqueeze(h, 1)

    def forward(self, input, hx=None):
        """``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``).

        ``input`` (L, N, input_size), or (N, L, input_size) with
        ``batch_first``, or (L, input_size) unbatched; ``hx`` (LSTM: a tuple
        ``(h_0, c_0)``) of shape (num_layers * D, N, H), zeros when None.
        ``output`` holds the last layer's states (L, N, D * H).
        """
        name, lstm = self._name(), self.mode == "LSTM"
        x = input
        if x.ndim not in (2, 3):
            raise ValueError(f"{name}: input has shape {tuple(x.shape)}, expected 3-D "
                             f"{'(batch, seq_len, ' if self.batch_first else '(seq_len, batch, '}input_size) "
                             "or 2-D (seq_len, input_size)")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[-1]} features (shape {tuple(x.shape)}), "
                             f"expected input_size={self.input_size}")
        _check_dtype(name, x, self.weight_ih_l0)
        batched = x.ndim == 3
        if not batched:
            x = unsqueeze(x, 1)
        elif self.batch_first:
            x = transpose(x, 0, 1)
        if x.shape[0] == 0:
            raise ValueError(f"{name}: input has shape {tuple(input.shape)}: the sequence is empty, "
                             "expected at least one time step")
        N = x.shape[1]
        H, P = self.hidden_size, self.proj_size or self.hidden_size
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
                h0 = self._check_state(hx[0], "h_0", P, N, batched, x)
                c0 = self._check_state(hx[1], "c_0", H, N, batched, x)
            else:
                if isinstance(hx, (tuple, list)):
                    raise TypeError(f"{name}: hx must be one tensor, got a {type(hx).__name__}")
                h0 = self._check_state(hx, "hx", P, N, batched, x)
        D = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            if layer and self.dropout and self.training:
                x = _dropout(x, self.dropout, training=True)
            outs = []
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                xw = linear(x, w_ih, b_ih)  # every time step's input part in one matmul
                k = layer * D + d
                h = _zeros(x, (N, P)) if h0 is None else h0[k, ...]
                c = (_zeros(x, (N, H)) if c0 is None else c0[k, ...]) if lstm else None
                last = 0 if d else -1  # the state after the recurrence's final step
                if w_hr is None:
                    y = recurrent_scan(self.mode, xw, w_hh, h, b_hh, c, reverse=bool(d))
                    if lstm:
                        y, c = y[..., :H], y[last, :, H:]
                    outs.append(y)
                    h_n.append(y[last, ...])
                    c_n.append(c)
                    continue
                seq = []
                for xw_t in (reversed(_unbind(xw)) if d else _unbind(xw)):
                    h, c = _lstm_step(xw_t, h, c, w_hh, b_hh, w_hr)
                    seq.append(h)
                outs.append(stack(seq[::-1] if d else seq, 0))
                h_n.append(h)
                c_n.append(c)
            x = outs[0] if D == 1 else concat(outs, -1)
        out, h_n = x, stack(h_n, 0)
        c_n = stack(c_n, 0) if lstm else None
        if not batched:
            out, h_n = out[:, 0, :], h_n[:, 0, :]
            c_n = c_n[:, 0, :] if lstm else None
        elif self.batch_first:
            out = transpose(out, 0, 1)
        return (out, (h_n, c_n)) if lstm else (out, h_n)


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=None, backend=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN({input_size}, {hidden_size}): unknown nonlinearity {nonlinearity!r}, "
                             "expected 'tanh' or 'relu'")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size,
                         num_layers, bias, batch_first, dropout, bidirectional, 0, dtype, backend)
        self.nonlinearity = nonlinearity


class GRU(RNNBase):
    """Gated recurrent unit, gates r, z, n (PyTorch's layout and formulas)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 dtype=None, backend=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, backend)


class LSTM(RNNBase):
    """Long short-term memory, gates i, f, g, o; ``proj_size`` > 0 projects h (weight_hr_l{k})."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, dtype=None, backend=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, backend)


# ---------------------------------------------------------------------- cells

class RNNCellBase(Module):
    """One time step: ``weight_ih`` (G*H, in), ``weight_hh`` (G*H, H), ``bias_ih``, ``bias_hh`` (G*H,)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, dtype=None, backend=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = new_parameter((num_chunks * hidden_size, input_size), dtype, backend)
        self.weight_hh = new_parameter((num_chunks * hidden_size, hidden_size), dtype, backend)
        if bias:
            self.bias_ih = new_parameter((num_chunks * hidden_size,), dtype, backend)
            self.bias_hh = new_parameter((num_chunks * hidden_size,), dtype, backend)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        return s

    def _prepare(self, input, states):
        """Input and states as 2-D (batch, size) tensors, checked; plus whether the input was batched."""
        name = f"{type(self).__name__}({self.input_size}, {self.hidden_size})"
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: input has shape {tuple(input.shape)}, expected 2-D (batch, input_size) "
                             "or 1-D (input_size,)")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features (shape {tuple(input.shape)}), "
                             f"expected input_size={self.input_size}")
        _check_dtype(name, input, self.weight_ih)
        batched = input.ndim == 2
        x = input if batched else unsqueeze(input, 0)
        shape = (x.shape[0], self.hidden_size)
        out = []
        for what, h in states:
            if h is None:
                out.append(_zeros(x, shape))
                continue
            h = _as_tensor(h, x)
            if tuple(h.shape) != (shape if batched else shape[1:]):
                raise ValueError(f"{name}: {what} has shape {tuple(h.shape)}, expected "
                                 f"{shape if batched else shape[1:]}")
            out.append(h if batched else unsqueeze(h, 0))
        return x, out, batched

    def _step(self, mode, x, h, c=None):
        """One step as one operation (:class:`.recurrent_scan.RecurrentScan` over one time step)."""
        xw = unsqueeze(linear(x, self.weight_ih, self.bias_ih), 0)
        return recurrent_scan(mode, xw, self.weight_hh, h, self.bias_hh, c)[0, ...]


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=None, backend=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell({input_size}, {hidden_size}): unknown nonlinearity {nonlinearity!r}, "
                             "expected 'tanh' or 'relu'")
        super().__init__(input_size, hidden_size, bias, 1, dtype, backend)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [("hx", hx)])
        h = self._step("RNN_RELU" if self.nonlinearity == "relu" else "RNN_TANH", x, h)
        return h if batched else h[0, :]


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, backend=None):
        super().__init__(input_size, hidden_size, bias, 3, dtype, backend)

    def forward(self, input, hx=None):
        x, (h,), batched = self._prepare(input, [("hx", hx)])
        h = self._step("GRU", x, h)
        return h if batched else h[0, :]


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o); returns ``(h', c')``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, backend=None):
        super().__init__(input_size, hidden_size, bias, 4, dtype, backend)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell({self.input_size}, {self.hidden_size}): hx must be a tuple (h_0, c_0), "
                            f"got {type(hx).__name__}")
        h0, c0 = (None, None) if hx is None else hx
        x, (h, c), batched = self._prepare(input, [("h_0", h0), ("c_0", c0)])
        y = self._step("LSTM", x, h, c)
        H = self.hidden_size
        h, c = y[:, :H], y[:, H:]
        return (h, c) if batched else (h[0, :], c[0, :])
