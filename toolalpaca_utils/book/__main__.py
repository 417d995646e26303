"""``python -m toolalpaca_utils.book``: the command line of :mod:`toolalpaca_utils.book.cli`."""
import sys

from toolalpaca_utils.book.cli import main

if __name__ == "__main__":
    sys.exit(main())
