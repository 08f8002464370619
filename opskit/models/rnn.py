"""Character-level language models: ``rnn``, ``lstm`` and ``gru``.

All three read a sequence of character ids, embed each one, run a recurrent network over the
sequence and, at every position, predict the next character (a softmax over the vocabulary).
Trained with cross-entropy on the shifted sequence; the loss in nats per character is what
the learning tests compare with the entropy of the data.

What differs is the recurrent cell that carries the state ``h_t`` from one character to the
next (``x_t`` the input, ``sigma`` the logistic sigmoid, ``*`` elementwise):

* **RNN (Elman)**: ``h_t = tanh(W x_t + U h_{t-1} + b)``. Simple, but the gradient through
  many steps is a product of Jacobians that tends to vanish or explode.
* **LSTM** (Hochreiter & Schmidhuber): a separate cell memory ``c_t`` updated additively.
  Input gate ``i = sigma(.)`` decides how much new content ``g = tanh(.)`` to write,
  forget gate ``f = sigma(.)`` how much of ``c_{t-1}`` to keep, output gate ``o = sigma(.)``
  how much of the memory to expose: ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)``.
  Because ``c_t`` is a gated sum rather than a squashed product, gradients survive long
  spans when ``f`` stays near 1.
* **GRU** (Cho et al.): two gates and no separate memory. Reset gate ``r`` chooses how much of
  ``h_{t-1}`` feeds the candidate ``n = tanh(W x_t + r * (U h_{t-1}))``; update gate ``z``
  interpolates ``h_t = (1 - z) * n + z * h_{t-1}``.

Here the cells are ``torch.nn.RNN``/``LSTM``/``GRU`` (fused, fast kernels that implement
exactly the equations above).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from opskit.models.registry import register_model

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


@dataclass(frozen=True)
class CharLMConfig:
    """Sizes of a character language model (the builder's keyword arguments)."""

    cell: str = "lstm"  # "rnn", "lstm" or "gru"
    vocab_size: int = 128
    embed_dim: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    tie_weights: bool = False  # share embedding and decoder weights (Press & Wolf)


class CharLM(nn.Module):
    """Embedding -> recurrent layers -> linear decoder to next-character logits."""

    def __init__(self, config: CharLMConfig | None = None):
        super().__init__()
        cfg = config or CharLMConfig()
        self.config = cfg
        cell, vocab_size, embed_dim = cfg.cell, cfg.vocab_size, cfg.embed_dim
        hidden_size, num_layers, dropout = cfg.hidden_size, cfg.num_layers, cfg.dropout
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(CELLS)}")
        self.cell = cell
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if cfg.tie_weights:  # Press & Wolf: share the input and output embeddings
            if embed_dim != hidden_size:
                raise ValueError("tie_weights needs embed_dim == hidden_size")
            self.decoder.weight = self.embed.weight

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``tokens (N, T)`` int64 -> next-character ``logits (N, T, vocab)``."""
        return self.step(tokens)[0]

    def step(self, tokens: torch.Tensor, state=None) -> tuple[torch.Tensor, Any]:
        """Logits and the recurrent state after ``tokens``, continuing from ``state``."""
        out, new_state = self.rnn(self.drop(self.embed(tokens)), state)
        return self.decoder(self.drop(out)), new_state

    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, length: int, generator=None, temperature: float = 1.0
    ) -> torch.Tensor:
        """Sample ``length`` characters after ``prefix (N, T)``; returns ``(N, length)``."""
        logits, state = self.step(prefix)
        samples = []
        for _ in range(length):
            probs = torch.softmax(logits[:, -1] / temperature, dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
            samples.append(nxt)
            logits, state = self.step(nxt, state)
        return torch.cat(samples, dim=1)


@register_model("rnn")
def rnn(**cfg) -> CharLM:
    """Character-level language model with an Elman RNN (tanh) cell."""
    return CharLM(CharLMConfig("rnn", **cfg))


@register_model("lstm")
def lstm(**cfg) -> CharLM:
    """Character-level language model with an LSTM cell (input, forget, output gates)."""
    return CharLM(CharLMConfig("lstm", **cfg))


@register_model("gru")
def gru(**cfg) -> CharLM:
    """Character-level language model with a GRU cell (reset and update gates)."""
    return CharLM(CharLMConfig("gru", **cfg))
