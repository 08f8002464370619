"""Generated text for the character-level language models.

A "language" of ``n_words`` random words (3 to 7 letters from a 12-letter alphabet), written
as a stream of words drawn independently and separated by spaces. Letters are shared between
words, so the next character is predictable only from the word typed so far: a model that
ignores context can do no better than the unigram entropy of the characters (about 2.4
nats), a model that looks one character back no better than the bigram entropy, and a model
that remembers the word's prefix approaches the source's true entropy rate
(``log(n_words) / (mean word length + 1)``, about 0.6 nats). ``ngram_entropy`` measures the
first two on the data itself, so the tests compare a model against them.
"""

from __future__ import annotations

import math

import torch

from opskit.train.data.tensors import TensorData

ALPHABET = " abcdefghijkl"  # id 0 is the space


def make_language(seed: int, n_words: int = 24) -> list[list[int]]:
    """``n_words`` distinct words, each a list of character ids (1..12)."""
    g = torch.Generator().manual_seed(seed)
    words: list[list[int]] = []
    seen = set()
    while len(words) < n_words:
        length = int(torch.randint(3, 8, (1,), generator=g))
        word = (torch.randint(1, len(ALPHABET), (length,), generator=g)).tolist()
        if tuple(word) not in seen:
            seen.add(tuple(word))
            words.append(word)
    return words


def make_stream(words: list[list[int]], n_chars: int, seed: int) -> torch.Tensor:
    """A stream of at least ``n_chars`` ids: words drawn uniformly, each followed by a space."""
    g = torch.Generator().manual_seed(seed)
    mean_len = sum(len(w) for w in words) / len(words) + 1
    picks = torch.randint(0, len(words), (int(n_chars / mean_len * 1.2) + 16,), generator=g)
    stream: list[int] = []
    for i in picks.tolist():
        stream.extend(words[i])
        stream.append(0)
        if len(stream) >= n_chars:
            break
    return torch.tensor(stream[:n_chars], dtype=torch.long)


def entropy_rate(words: list[list[int]]) -> float:
    """The source's true entropy in nats per character (the best any model can do)."""
    return math.log(len(words)) / (sum(len(w) for w in words) / len(words) + 1)


def ngram_entropy(stream: torch.Tensor, order: int, vocab: int = len(ALPHABET)) -> float:
    """Empirical conditional entropy (nats) of a character given the ``order - 1`` before it.

    ``order=1``: unigram entropy; ``order=2``: bigram. This is the loss of the best model that
    sees only that much context (measured on the data itself, so a slight underestimate).
    """
    if order == 1:
        p = torch.bincount(stream, minlength=vocab).double()
        p = p[p > 0] / p.sum()
        return float(-(p * p.log()).sum())
    pairs = torch.bincount(stream[:-1] * vocab + stream[1:], minlength=vocab * vocab).double()
    joint = pairs.view(vocab, vocab)
    row = joint.sum(1, keepdim=True)
    cond = torch.where(joint > 0, joint / row.clamp(min=1), torch.ones_like(joint))
    return float(-(joint * cond.log()).sum() / joint.sum())


def text_datasets(seed: int, seq_len: int = 64, n_train: int = 1024, n_val: int = 128):
    """Train/val ``TensorData(tokens (N, seq_len + 1))`` from one language, two streams.

    Inputs are ``tokens[:, :-1]`` and next-character targets ``tokens[:, 1:]``.
    """
    words = make_language(seed)
    train = make_stream(words, n_train * (seq_len + 1), seed + 1).view(n_train, seq_len + 1)
    val = make_stream(words, n_val * (seq_len + 1), seed + 2).view(n_val, seq_len + 1)
    return TensorData(train), TensorData(val)


def decode(tokens: torch.Tensor) -> str:
    """Character ids back to text (for logs and samples)."""
    return "".join(ALPHABET[int(t)] if 0 <= int(t) < len(ALPHABET) else "?" for t in tokens)
