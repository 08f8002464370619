"""A corpus of ``.dockerignore`` files and trees, for comparing opskit's context with the engine's.

Every case is the same tree (:data:`TREE`, plus the case's own extra files) with one
``.dockerignore`` (bytes, exactly as written; None: no file). :data:`BAD` are ignore files
that ``docker build`` refuses: opskit must refuse them too, with a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

# File names as bytes: some are not UTF-8 (a Latin-1 name is legal on Linux).
TREE: tuple[bytes, ...] = (
    b"src/train.py", b"src/data/__init__.py", b"src/Data/big.bin", b"src/model.PT",
    b"weights.pt", b"weights.PT", b"test/t.py", b"test/sub/deep/x.txt", b"docs/a.md",
    b"docs/B.MD", b"README.md", b".env", b".git/HEAD", b"a b/c d.txt", b"star*name.txt",
    b"q?mark.txt", b"br[ack]et.txt", b"back\\slash.txt", b"x/y/z/keep.bin", b"x/y/z/drop.bin",
    b"#hash.txt", b"!bang.txt", b"dir.with.dots/f", "unicode/\u00e9t\u00e9.txt".encode(),
    b"latin1/caf\xe9.txt", b"node_modules/p/index.js", b"secret.txt", b"a+b(c)$.txt",
    b"deep/a/b/c/d/e.txt", b"Makefile",
)
LINKS = ((b"link_to_src", b"src"), (b"dangling", b"nowhere"))
EMPTY_DIRS = (b"empty", b"x/empty")

CASES: dict[str, bytes | None] = {
    "no-file": None,
    "empty-file": b"",
    "only-comments": b"# nothing\n\n   \n#*\n",
    "case-sensitive": b"src/Data\n*.PT\n",  # field case images-train/01
    "bom": b"\xef\xbb\xbfsecret.txt\nREADME.md\n",  # field case images-train/02
    "bom-only-first-line": b"\xef\xbb\xbfweights.pt\n\xef\xbb\xbfsecret.txt\n",
    "latin1-comment": b"# caf\xe9 au lait\nsecret.txt\n",  # field case images-train/04
    "latin1-pattern": b"latin1/caf\xe9.txt\n",
    "latin1-wildcard": b"latin1/caf?.txt\nlatin1/*\xe9*\n",
    "utf8-pattern": "unicode/\u00e9t\u00e9.txt\n".encode(),
    "negation": b"*.md\n!README.md\n",
    "exception-inside-excluded-dir": b"x\n!x/y/z/keep.bin\n",
    "exception-glob-does-not-open-dir": b"x\n!**/keep.bin\n",
    "double-star": b"**/*.bin\n",
    "double-star-dir": b"**/deep\n",
    "prefix-double-star": b"test/**\n",
    "leading-slash": b"/src/train.py\n/test\n",
    "trailing-spaces-tabs": b"weights.pt   \n\tdocs\t\n",
    "go-unicode-space": "weights.pt\u00a0\n\u2003README.md\n".encode(),
    "backslash-escapes": b"star\\*name.txt\nq\\?mark.txt\nback\\\\slash.txt\n",
    "brackets": b"br\\[ack\\]et.txt\n[a-d]ocs\n",
    "negated-class": b"[^a-z]*.md\n",
    "crlf": b"weights.pt\r\nREADME.md\r\n",
    "comment-only-at-column-0": b" # not a comment\n#hash.txt\n",
    "escaped-bang": b"\\!bang.txt\n",
    "everything-but-src": b"*\n!src\n",
    "everything-but-py": b"**\n!src/**/*.py\n",
    "dotfiles": b".*\n",
    "dot-segments": b"./weights.pt\nsrc/../README.md\n../x\n",
    "one-level": b"*/*.txt\n",
    "last-line-wins": b"src\n!src/data\nsrc/data/__init__.py\n",
    "names-with-spaces": b"a b\n",
    "self-excluding": b".dockerignore\nMakefile\n",
    "git-but-head": b".git\n!.git/HEAD\nnode_modules\n",
    "question-mark": b"?eights.pt\n",
    "regex-characters": b"a+b(c)$.txt\ndir.with.dots\n",
    "links": b"link_to_src\ndangling\n",
    "empty-dirs": b"x/empty\n",
    "no-final-newline": b"secret.txt\nweights.pt",
    "exception-then-exclude": b"!weights.pt\nweights.pt\n",
}

BAD: dict[str, bytes] = {
    "lone-bang": b"!\n",
    "unclosed-bracket": b"src/[a-\n",
    "trailing-backslash": b"src\\\n",
}


def make_tree(root: Path, ignore: bytes | None) -> Path:
    """The corpus tree under ``root`` (created) with ``ignore`` as its .dockerignore."""
    base = os.fsencode(root)
    for rel in TREE:
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"data of " + rel + b"\n")
    for rel in EMPTY_DIRS:
        os.makedirs(os.path.join(base, rel), exist_ok=True)
    for rel, target in LINKS:
        os.symlink(target, os.path.join(base, rel))
    if ignore is not None:
        (root / ".dockerignore").write_bytes(ignore)
    return root
