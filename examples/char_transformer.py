"""A character-level Transformer language model on Shakespeare's sonnets (shipped with xpnet).

The model is PyTorch's recipe with xpnet's modules: an Embedding for the characters, a learnt
position embedding, a causal TransformerEncoder (pre-norm, GELU) and a Linear head, trained
with cross-entropy on the next character.  It trains for ``--seconds`` (a minute by default)
on the CPU, prints the loss as it falls, then samples ``--generate`` characters.

    python examples/char_transformer.py                  # a minute of training
    python examples/char_transformer.py --seconds 5 --d-model 32 --layers 1   # a quick look
"""

from __future__ import annotations

import argparse
import importlib.resources
import math
import time

import xpnet as xn
from xpnet import nn, optim
import xpnet.nn.functional as F


def load_text() -> str:
    return (importlib.resources.files("xpnet.data") / "files" / "sonnets.txt").read_text(encoding="utf-8")


class CharTransformer(nn.Module):
    def __init__(self, vocab: int, d_model: int, nhead: int, layers: int, context: int, dropout: float = 0.1):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(d_model, nhead, 4 * d_model, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model))
        self.head = nn.Linear(d_model, vocab)

    def forward(self, idx):  # idx (N, T) int64 -> logits (N, T, vocab)
        T = idx.shape[1]
        positions = xn.tensor(list(range(T)), dtype="int64")
        h = self.tok(idx) + self.pos(positions)
        return self.head(self.encoder(h, is_causal=True))


def batches(data, batch: int, context: int, rng):
    """Random windows of the text: inputs and the same shifted by one character."""
    while True:
        starts = rng.integers(0, len(data) - context - 1, size=batch).tolist()
        x = [data[s:s + context] for s in starts]
        y = [data[s + 1:s + context + 1] for s in starts]
        yield xn.tensor(x, dtype="int64"), xn.tensor(y, dtype="int64")


def generate(model, prompt_ids, n: int, temperature: float, rng):
    """Sample ``n`` characters after ``prompt_ids``, one at a time (the model in eval mode)."""
    model.eval()
    ids = list(prompt_ids)
    with xn.no_grad():
        for _ in range(n):
            window = ids[-model.context:]
            logits = model(xn.tensor([window], dtype="int64"))
            p = F.softmax(logits[0, len(window) - 1] * (1.0 / temperature), -1).numpy().astype("float64")
            ids.append(int(rng.choice(len(p), p=p / p.sum())))
    model.train()
    return ids


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="training time (default 60)")
    ap.add_argument("--steps", type=int, default=None, help="stop after this many steps instead")
    ap.add_argument("--d-model", type=int, default=48)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--context", type=int, default=48)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--generate", type=int, default=200, help="characters to sample after training")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args(argv)

    xn.manual_seed(args.seed)
    rng = xn.Generator(args.seed).host
    text = load_text()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = [stoi[c] for c in text]
    model = CharTransformer(len(chars), args.d_model, args.heads, args.layers, args.context)
    opt = optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    print(f"{len(text)} characters, {len(chars)} distinct; {model.num_parameters()} parameters; "
          f"training for {args.steps or 0} steps or {args.seconds:.0f} s on {xn.current_backend().name}")
    print(f"a uniform guess scores ln({len(chars)}) = {math.log(len(chars)):.3f}")
    losses, start, step = [], time.perf_counter(), 0
    for x, y in batches(data, args.batch, args.context, rng):
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, len(chars)), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % args.log_every == 0 or step == 1:
            losses.append((step, loss.item()))
            print(f"step {step:5d}  loss {losses[-1][1]:.3f}  ({time.perf_counter() - start:.0f} s)")
        if (args.steps and step >= args.steps) or (not args.steps and time.perf_counter() - start > args.seconds):
            break
    prompt = "Shall I compare thee"
    ids = generate(model, [stoi[c] for c in prompt], args.generate, args.temperature, rng)
    sample = "".join(chars[i] for i in ids)
    print("\n--- sample ---\n" + sample)
    return losses, sample


if __name__ == "__main__":
    main()
