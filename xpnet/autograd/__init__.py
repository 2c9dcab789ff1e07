"""Reverse-mode automatic differentiation over the Array API."""

from . import functions
from .engine import BackwardHookHandle, grad, register_backward_end_hook
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled, tensor


def value_and_grad(f, argnums=0):
    """``f`` turned into a function returning ``(f(*args), gradient(s))``.

    ``argnums`` (an int or a tuple of ints) picks the arguments to
    differentiate; they are taken as fresh leaf tensors.  ``f`` must return
    a one-element tensor.
    """
    single = isinstance(argnums, int)
    nums = (argnums,) if single else tuple(argnums)

    def wrapped(*args, **kwargs):
        args = list(args)
        for i in nums:
            a = args[i].data if isinstance(args[i], Tensor) else args[i]
            args[i] = Tensor(tensor(a).data, requires_grad=True)
        value = f(*args, **kwargs)
        grads = grad(value, [args[i] for i in nums])
        return value.detach(), grads[0] if single else grads

    return wrapped


def grad_of(f, argnums=0):
    """``f`` turned into a function returning its gradient (JAX's ``grad``)."""
    vg = value_and_grad(f, argnums)
    return lambda *args, **kwargs: vg(*args, **kwargs)[1]
