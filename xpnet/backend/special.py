"""The error function: the library's own where it has one, else a portable series."""

from __future__ import annotations

import math

import array_api_compat

from .arrays import namespace_of
from .ops import clip, sign

# erfc(z) = t * exp(-z^2 + f(u)) for z >= 0, t = 2 / (2 + z), u = 2t - 1 in (-1, 1]:
# the Chebyshev coefficients of f, computed with mpmath (40 digits) at 60 Chebyshev
# nodes; the terms left out are below 1e-19.  (The same expansion as Numerical
# Recipes' erfccheb, coefficient 0 halved here.)
_ERFC_CHEB = (
    -0.6513268598908547, 0.6419697923564903, 0.019476473204185836, -0.009561514786808632,
    -0.0009465953444820369, 0.00036683949785276145, 4.252332480690777e-05, -2.0278578112534243e-05,
    -1.6242900046470255e-06, 1.3036558355805232e-06, 1.5626441722066143e-08, -8.523809591492654e-08,
    6.529054439098851e-09, 5.059343495551469e-09, -9.91364156493033e-10, -2.273651222931836e-10,
    9.646791102015527e-11, 2.3940380830391147e-12, -6.886027526497553e-12, 8.944879273090726e-13,
    3.130921399342958e-13, -1.1270822361367252e-13, 3.810905255189232e-16, 7.106097613609237e-15,
    -1.5230282014571043e-15, -9.457494571291234e-17, 1.210237189224279e-16, -2.816663087747177e-17,
)
# erf(z) = z * sum_n T_n z^(2n) for |z| < 0.5 (Maclaurin series, 13 terms: error < 1e-17),
# used there because 1 - erfc(z) loses relative accuracy near 0.
_ERF_TAYLOR = tuple(2 / math.sqrt(math.pi) * (-1) ** n / (math.factorial(n) * (2 * n + 1)) for n in range(13))
# Terms (Chebyshev, Maclaurin) enough for float32 (truncation error < 1e-9): half the work.
_TERMS_FLOAT32 = (15, 8)


def _erfc_nonneg(xp, z, terms):
    """erfc(z) for z >= 0 (Clenshaw sum of the first ``terms`` Chebyshev terms)."""
    t = 2.0 / (2.0 + z)
    u2 = 4.0 * t - 2.0
    d = dd = xp.zeros_like(z)
    for c in _ERFC_CHEB[terms - 1:0:-1]:
        d, dd = u2 * d - dd + c, d
    return t * xp.exp(-z * z + _ERFC_CHEB[0] + 0.5 * u2 * d - dd)


def erf_portable(x):
    """erf with standard functions only: about 2e-16 relative error in float64 (one ulp in
    float32), some 100 elementwise passes in float64."""
    xp = namespace_of(x)
    cheb, taylor = (len(_ERFC_CHEB), len(_ERF_TAYLOR)) if x.dtype == xp.float64 else _TERMS_FLOAT32
    a = clip(xp.abs(x), 0.0, 10.0)  # erf(10) is 1 to double precision
    s = a * a
    p = xp.full_like(a, _ERF_TAYLOR[taylor - 1])
    for c in _ERF_TAYLOR[taylor - 2::-1]:
        p = p * s + c
    return sign(x) * xp.where(a < 0.5, a * p, 1.0 - _erfc_nonneg(xp, a, cheb))


def erf(x):
    """The error function of array ``x``: the library's own where it has one (SciPy for
    NumPy when installed), else :func:`erf_portable`."""
    c = array_api_compat
    if c.is_torch_array(x):
        import torch
        return torch.special.erf(x)
    if c.is_jax_array(x):
        import jax.scipy.special
        return jax.scipy.special.erf(x)
    if c.is_cupy_array(x):
        import cupyx.scipy.special
        return cupyx.scipy.special.erf(x)
    if c.is_numpy_array(x):
        try:
            import scipy.special
        except ImportError:
            return erf_portable(x)
        return scipy.special.erf(x)
    return erf_portable(x)
