"""Progress output: a tqdm bar per epoch on a terminal, one plain line per epoch otherwise."""

from __future__ import annotations

import shutil
import sys


def _fmt(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items())


def _wrapped(logs: dict, width: int, indent: str = "  ") -> str:
    """The epoch logs as ``name: value`` items joined by `` - ``, in lines of at most ``width``
    characters (an item is never cut)."""
    lines, line = [], ""
    for item in (f"{k}: {v:.4g}" for k, v in logs.items()):
        candidate = f"{line} - {item}" if line else indent + item
        if line and len(candidate) > width:
            lines.append(line)
            candidate = indent + item
        line = candidate
    return "\n".join(lines + [line])


class Progress:
    """``verbose``: 0 silent, 1 a progress bar (plain lines when output is not a terminal),
    2 one line per epoch."""

    def __init__(self, verbose: int, epochs: int):
        self.verbose, self.epochs, self.bar = verbose, epochs, None
        self.tty = verbose == 1 and sys.stdout.isatty()

    def start_epoch(self, epoch, n_batches, start):
        self.epoch, self.n_batches = epoch, n_batches
        if self.tty:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                self.tty = False
                return
            self.bar = tqdm(total=n_batches, initial=start, desc=f"Epoch {epoch + 1}/{self.epochs}",
                            unit="step", leave=True, dynamic_ncols=True)

    def update(self, step, loss, seconds):
        if self.bar is not None:
            self.bar.n = step
            self.bar.set_postfix_str(f"loss: {loss:.4g}", refresh=True)

    def end_epoch(self, logs, seconds):
        per_step = seconds / max(self.n_batches, 1) * 1e3
        if self.bar is not None:
            # the bar keeps the loss; the whole line (metrics, val_*) follows it, wrapped to the
            # terminal's width, so that nothing is cut off on 80 columns
            self.bar.set_postfix_str(f"loss: {logs['loss']:.4g}" if "loss" in logs else "", refresh=True)
            self.bar.close()
            self.bar = None
            width = shutil.get_terminal_size((80, 24)).columns
            print(_wrapped(logs, max(width - 1, 40)), flush=True)
        elif self.verbose:
            print(f"Epoch {self.epoch + 1}/{self.epochs} - {seconds:.1f}s {per_step:.1f}ms/step - {_fmt(logs)}",
                  flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
