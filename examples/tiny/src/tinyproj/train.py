"""python -m tinyproj.train [--steps N]: a few SGD steps on random data; prints the losses."""

from __future__ import annotations

import argparse

import torch

from tinyproj.model import example_batch, tiny_cnn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyproj.train")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(args.steps):
        x, y = example_batch(16), torch.randint(0, 10, (16,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"step {step} loss {loss.item():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
