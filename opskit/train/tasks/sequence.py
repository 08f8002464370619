"""Character-level language modelling: next-character cross-entropy, in nats per character.

Data: ``--data shapes`` (the default name for "generated") gives the word language of
``opskit.train.data.sequences``; a batch is ``tokens (N, T + 1)``, inputs ``tokens[:, :-1]``,
targets ``tokens[:, 1:]``. The metric is the validation loss; ``evaluate`` also reports the
data's unigram and bigram entropies, the best losses without context and with one character
of context, so a run shows at a glance whether the model uses longer context.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from opskit.train.data.sequences import ALPHABET, ngram_entropy, text_datasets
from opskit.train.errors import DataError
from opskit.train.tasks.base import StepContext, Task, register_task


@register_task("language_model")
class LanguageModel(Task):
    metric = "loss"
    higher_is_better = False
    default_lr = 1e-2
    seq_len = 64

    def datasets(self, seed: int):
        source = getattr(self.args, "data", None) or "shapes"
        if source not in ("shapes", "text"):
            raise DataError(
                f"language models train on generated text only, not {source!r}",
                "use --data shapes (the default)",
            )
        vocab = int(self.model_cfg.get("vocab_size", 128))
        if vocab < len(ALPHABET):
            raise DataError(
                f"the generated text has {len(ALPHABET)} characters, the model's vocabulary {vocab}",
                f"pass --model-arg vocab_size={len(ALPHABET)} (or more)",
            )
        train, val = text_datasets(
            seed,
            self.seq_len,
            getattr(self.args, "train_samples", 4096),
            getattr(self.args, "val_samples", 512),
        )
        self._entropies = {
            "unigram_entropy": ngram_entropy(train.tensors[0].flatten(), 1),
            "bigram_entropy": ngram_entropy(train.tensors[0].flatten(), 2),
        }
        return train, val

    def items_in(self, batch) -> int:
        return int(batch[0].numel() - batch[0].shape[0])  # characters predicted

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        (tokens,) = batch
        with ctx.autocast():
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        ctx.backward_step(loss)
        return {"loss": loss.detach()}

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        total = torch.zeros((), dtype=torch.float64, device=ctx.device)
        count = 0
        for (tokens,) in batches:
            with ctx.autocast():
                logits = model(tokens[:, :-1])
            total += F.cross_entropy(
                logits.float().flatten(0, 1), tokens[:, 1:].flatten(), reduction="sum"
            )
            count += tokens[:, 1:].numel()
        loss = float(total) / max(count, 1)
        return {
            "loss": loss,
            "bits_per_char": loss / math.log(2),
            "perplexity": math.exp(min(loss, 50.0)),
            **getattr(self, "_entropies", {}),
        }
