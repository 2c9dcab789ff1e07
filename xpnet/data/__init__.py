"""Data: datasets, the DataLoader, preprocessing, built-in and file-format data sets.

Host I/O code: it may use NumPy; batches reach the backend without per-sample
Python work (see :class:`DataLoader`).
"""

from .dataset import *  # noqa: F401,F403
from .loader import *  # noqa: F401,F403
from .preprocessing import *  # noqa: F401,F403
from .datasets import *  # noqa: F401,F403
from .readers import *  # noqa: F401,F403
from . import dataset, datasets, loader, preprocessing, readers  # noqa: F401
