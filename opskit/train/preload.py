"""What every training process imports before its first step, imported in one go.

``opskit.train.torchrun`` imports this module before the node meets the others
(``--start-method fork`` with ``-m opskit.train``); each worker forked from that launcher then
starts with torch and the training entry already imported instead of importing them after
the rendezvous. Importing this module imports, nothing more (no CUDA, no threads: a forked
child must not inherit them).
"""

import warnings

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # as the entry does

import torch  # noqa: E402
import torch._dynamo  # noqa: E402,F401  the optimizers import it at their first parameter group
import torch.distributed  # noqa: E402,F401
import torch.nn.parallel  # noqa: E402,F401  DistributedDataParallel

import opskit.train.checkpoint  # noqa: E402,F401
import opskit.train.data  # noqa: E402,F401
import opskit.train.distributed  # noqa: E402,F401
import opskit.train.entry  # noqa: E402,F401
import opskit.train.loop  # noqa: E402,F401
import opskit.train.metrics  # noqa: E402,F401
import opskit.train.tasks.base  # noqa: E402,F401

__all__ = ["torch"]
