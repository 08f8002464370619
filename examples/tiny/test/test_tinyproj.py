"""Runs with plain python inside the image (no pytest there): python test/test_tinyproj.py"""

from tinyproj.model import example_batch, parameter_count, tiny_cnn


def test_shapes() -> None:
    model = tiny_cnn(num_classes=5)
    assert tuple(model(example_batch(2)).shape) == (2, 5)
    assert parameter_count(model) > 0


if __name__ == "__main__":
    test_shapes()
    print("ok")
