"""``pixel_shuffle``, ``pixel_unshuffle`` and ``channel_shuffle``: rearrangements by reshape and
permute (Shi et al., 2016; Zhang et al., 2018), as PyTorch."""

from __future__ import annotations

from ...autograd.functions import permute, reshape

__all__ = ["pixel_shuffle", "pixel_unshuffle", "channel_shuffle"]


def _shape(x, name, least=3):
    s = tuple(x.shape)
    if len(s) < least:
        raise ValueError(f"{name}: expected an input with at least {least} dimensions (*, C, H, W), got shape {s}")
    return s


def pixel_shuffle(input, upscale_factor: int):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""
    s = _shape(input, "pixel_shuffle")
    r, (C, H, W), lead = upscale_factor, s[-3:], s[:-3]
    if C % (r * r):
        raise ValueError(f"pixel_shuffle: {C} channels are not divisible by upscale_factor^2 = {r * r}")
    n = len(lead)
    y = reshape(input, lead + (C // (r * r), r, r, H, W))
    y = permute(y, tuple(range(n)) + (n, n + 3, n + 1, n + 4, n + 2))
    return reshape(y, lead + (C // (r * r), H * r, W * r))


def pixel_unshuffle(input, downscale_factor: int):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""
    s = _shape(input, "pixel_unshuffle")
    r, (C, H, W), lead = downscale_factor, s[-3:], s[:-3]
    if H % r or W % r:
        raise ValueError(f"pixel_unshuffle: height {H} and width {W} must be divisible by downscale_factor {r}")
    n = len(lead)
    y = reshape(input, lead + (C, H // r, r, W // r, r))
    y = permute(y, tuple(range(n)) + (n, n + 2, n + 4, n + 1, n + 3))
    return reshape(y, lead + (C * r * r, H // r, W // r))


def channel_shuffle(input, groups: int):
    """(N, C, *) with C = g k -> channels reordered as (k, g): channel i*g + j <- j*k + i."""
    s = tuple(input.shape)
    if len(s) < 3 or s[1] % groups:
        raise ValueError(f"channel_shuffle: expected (N, C, *) with C divisible by groups={groups}, got shape {s}")
    y = reshape(input, (s[0], groups, s[1] // groups) + s[2:])
    return reshape(permute(y, (0, 2, 1) + tuple(range(3, len(s) + 1))), s)
