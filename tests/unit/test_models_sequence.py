"""Character language models and their generated text."""

import math

import pytest
import torch

from opskit.models.registry import get_model, get_model_info
from opskit.train.data.sequences import (
    ALPHABET,
    decode,
    entropy_rate,
    make_language,
    make_stream,
    ngram_entropy,
    text_datasets,
)


@pytest.mark.parametrize("name", ["rnn", "lstm", "gru"])
def test_char_lm_shapes_and_state(name):
    torch.manual_seed(0)
    info = get_model_info(name)
    assert info.task == "language_model" and info.family == "sequence"
    model = get_model(name, **info.small)
    tokens = torch.randint(0, 13, (3, 10))
    logits = model(tokens)
    assert logits.shape == (3, 10, 32)
    # Running in two halves with the carried state equals one pass over the whole sequence.
    first, state = model.step(tokens[:, :4])
    second, _ = model.step(tokens[:, 4:], state)
    assert torch.allclose(torch.cat((first, second), 1), logits, atol=1e-5)
    assert model.generate(tokens[:, :2], 5).shape == (3, 5)


def test_reference_lstm_size():
    model = get_model("lstm", **get_model_info("lstm").reference)
    lstm_params = sum(p.numel() for p in model.rnn.parameters())
    # 4 gates x (input + hidden weights + 2 biases) per layer.
    expected = 4 * (256 * 64 + 256 * 256 + 2 * 256) + 4 * (256 * 256 + 256 * 256 + 2 * 256)
    assert lstm_params == expected


def test_lstm_gates_follow_the_equations():
    """One LSTM step computed by hand from the documented gate equations."""
    torch.manual_seed(0)
    model = get_model("lstm", vocab_size=13, embed_dim=4, hidden_size=3, num_layers=1)
    x = model.embed(torch.tensor([[5]]))[0, 0]
    h0, c0 = torch.randn(3), torch.randn(3)
    w_ih, w_hh = model.rnn.weight_ih_l0, model.rnn.weight_hh_l0
    pre = w_ih @ x + model.rnn.bias_ih_l0 + w_hh @ h0 + model.rnn.bias_hh_l0
    i, f, g, o = pre.split(3)  # torch's order: input, forget, cell candidate, output
    c1 = torch.sigmoid(f) * c0 + torch.sigmoid(i) * torch.tanh(g)
    h1 = torch.sigmoid(o) * torch.tanh(c1)
    out, (h, c) = model.rnn(x.view(1, 1, 4), (h0.view(1, 1, 3), c0.view(1, 1, 3)))
    assert torch.allclose(h.flatten(), h1, atol=1e-6) and torch.allclose(c.flatten(), c1, atol=1e-6)


def test_text_is_deterministic_and_has_context_structure():
    a, _ = text_datasets(7, seq_len=16, n_train=64, n_val=8)
    b, _ = text_datasets(7, seq_len=16, n_train=64, n_val=8)
    assert torch.equal(a.tensors[0], b.tensors[0]) and a.tensors[0].shape == (64, 17)
    words = make_language(0)
    stream = make_stream(words, 50_000, seed=1)
    text = decode(stream[:200])
    assert set(text) <= set(ALPHABET) and "  " not in text
    unigram, bigram, rate = ngram_entropy(stream, 1), ngram_entropy(stream, 2), entropy_rate(words)
    # Context helps: each longer context lowers the achievable loss a lot.
    assert unigram > 2.2 and bigram < unigram - 0.3 and rate < bigram / 2
    assert unigram <= math.log(len(ALPHABET))


def test_ngram_entropy_hand_cases():
    assert ngram_entropy(torch.tensor([0, 1, 0, 1]), 1) == pytest.approx(math.log(2))
    # Alternating 0101...: the next character is certain given the previous one.
    assert ngram_entropy(torch.tensor([0, 1] * 50), 2) == pytest.approx(0.0)


def test_language_model_task_refuses_a_too_small_vocabulary():
    from opskit.train.args import TrainArgs
    from opskit.train.errors import DataError
    from opskit.train.tasks.base import get_task

    info = get_model_info("gru")
    task = get_task("language_model")(info, {**info.small, "vocab_size": 5}, TrainArgs(model="gru"))
    with pytest.raises(DataError, match="13 characters") as err:
        task.datasets(0)
    assert err.value.hint
