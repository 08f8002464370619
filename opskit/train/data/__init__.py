"""Training data: synthetic tensors, generated learnable tasks, a user's own ``.npz`` files."""
