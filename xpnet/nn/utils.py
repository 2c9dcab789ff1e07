"""Gradient clipping and other helpers (``xpnet.nn.utils``)."""
