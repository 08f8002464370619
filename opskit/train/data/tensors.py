"""``TensorData``: the usual ``BatchDataset``, equal-length tensors gathered by an index."""

from __future__ import annotations

import torch


class TensorData:
    """Tensors of equal first dimension; ``get_batch(idx)`` gathers ``idx`` from each.

    Gathering a batch is one indexing call per tensor, so the data time of a step stays a
    tiny fraction of the step time. ``to(device)`` moves everything once (small datasets).
    """

    def __init__(self, *tensors: torch.Tensor):
        if not tensors:
            raise ValueError("TensorData needs at least one tensor")
        n = tensors[0].shape[0]
        for t in tensors:
            if t.shape[0] != n:
                raise ValueError(f"tensors differ in length: {[x.shape[0] for x in tensors]}")
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t.index_select(0, indices.to(t.device)) for t in self.tensors)

    def to(self, device: torch.device | str) -> TensorData:
        return TensorData(*(t.to(device) for t in self.tensors))

    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in self.tensors)

    def split(self, n_first: int) -> tuple[TensorData, TensorData]:
        """The first ``n_first`` samples and the rest."""
        return (
            TensorData(*(t[:n_first] for t in self.tensors)),
            TensorData(*(t[n_first:] for t in self.tensors)),
        )
