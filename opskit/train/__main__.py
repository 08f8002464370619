"""``python -m opskit.train MODEL [options]`` (see ``opskit.train.entry``)."""

import sys

from opskit.train.entry import main

if __name__ == "__main__":
    sys.exit(main())
