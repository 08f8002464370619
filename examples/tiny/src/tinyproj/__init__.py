"""A tiny project: one small CNN and a training loop over random data (torch only)."""

VERSION = "1"
