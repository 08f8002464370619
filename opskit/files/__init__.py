"""File operations on hosts: ``scp`` (verified, atomic, resumable) and ``chmod`` (modes, --explain).

Modules: ``chmod`` (where a path lives, ``HOST:PATH``, and changing modes), ``modes`` (parsing
and explaining octal and symbolic modes, pure), ``copyplan`` (what a copy will do, decided
before any byte moves) and ``transfer`` (the copy itself: temp name, sha256, rename).
"""
