"""``xpnet.optim``: optimizers and learning-rate schedules (PyTorch semantics)."""
