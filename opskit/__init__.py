"""opskit: host checks, layered GPU images and remote training from one command line."""

__version__ = "0.1.0"
