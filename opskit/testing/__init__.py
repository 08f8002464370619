"""Test helpers that are part of the product: real Docker engines, sshd and Docker-in-Docker
hosts, and a fake transport keyed by command. Usable from any project's pytest suite."""
