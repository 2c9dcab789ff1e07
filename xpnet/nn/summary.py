"""``model.summary()``: a layer table with output shapes and parameter counts."""

from __future__ import annotations

from .. import backend as B
from ..autograd import Tensor, no_grad


def summary(model, input_shape=None, dtype="float32") -> str:
    rows, handles = [], []
    names = {id(m): n for n, m in model.named_modules()}

    def record(module, inputs, output):
        shape = tuple(output.shape) if isinstance(output, Tensor) else (
            tuple(output[0].shape) if isinstance(output, tuple) and output and isinstance(output[0], Tensor) else "?")
        own = sum(p.size for p in module.parameters(recurse=False))
        rows.append((names.get(id(module), "?"), type(module).__name__, shape, own))

    leaves = [m for m in model.modules() if not any(True for _ in m.children()) or m is model]
    if input_shape is not None:
        for m in leaves:
            if m is not model:
                handles.append(m.register_forward_hook(record))
        try:
            first = next(model.parameters(), None)
            b = first.backend if first is not None else B.current_backend()
            x = Tensor(b.xp.zeros(tuple(input_shape), dtype=B.resolve_dtype(b.xp, dtype), device=b.device))
            was = model.training
            model.eval()
            with no_grad():
                model(x)
            model.train(was)
        finally:
            for h in handles:
                h.remove()
    else:
        for name, m in model.named_modules():
            if m is not model and not any(True for _ in m.children()):
                rows.append((name, type(m).__name__, "-", sum(p.size for p in m.parameters(recurse=False))))
    total = sum(p.size for p in model.parameters())
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    head = ("Layer", "Type", "Output shape", "Params")
    table = [head] + [(n, t, str(s), f"{c:,}") for n, t, s, c in rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths[:3]) + "  {:>%d}" % widths[3]
    out = [line.format(*head), "-" * (sum(widths) + 6)] + [line.format(*r) for r in table[1:]]
    out += ["-" * (sum(widths) + 6), f"Total params: {total:,}", f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(out)
