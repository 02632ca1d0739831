"""``python -m m31clusters``: the ``m31clusters`` command line (see `m31clusters.cli`)."""

import sys

from .cli import main

__all__ = []

if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in the tests
    sys.exit(main())
