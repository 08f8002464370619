"""The recurrent language models learn the generated text, through the real entry point.

The bar is set by the data, not by a guess: after 150 steps the validation loss must be below
``0.6 * bigram entropy`` of the text (about 1.1 nats). The unigram entropy (about 2.5) is the
best loss of any model that ignores context, the bigram entropy (about 1.9) the best of one
that sees only the previous character; so only a model that carries the word typed so far in
its state can pass. An untrained model starts at about log(32) = 3.5.
"""

import math

import pytest
from _learning import train_small

STEPS = 150


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_char_lm_beats_context_free_entropies(tmp_path, name):
    summary = train_small(tmp_path / name, name, STEPS, batch=32, samples=(1024, 128))
    assert summary["status"] == "completed" and summary["metric"] == "loss"
    final = summary["final"]
    first = summary["evals"][0]["loss"]
    unigram, bigram = final["unigram_entropy"], final["bigram_entropy"]
    assert unigram > 2.2 and bigram > 1.5, "the text lost its structure: thresholds mean nothing"
    assert final["loss"] < 0.6 * bigram, (
        f"{name}: loss {final['loss']:.3f} nats/char is not below 0.6 x bigram entropy "
        f"{bigram:.3f} (unigram {unigram:.3f}); first eval {first:.3f}"
    )
    assert final["loss"] < math.log(32) / 3  # far below an untrained model's log(vocab)
