"""Training: the Trainer, callbacks and metrics."""

from .callbacks import *  # noqa: F401,F403
from .metrics import *  # noqa: F401,F403
from .trainer import NonFiniteLoss, Trainer  # noqa: F401
from .tensorboard import TensorBoard  # noqa: F401
