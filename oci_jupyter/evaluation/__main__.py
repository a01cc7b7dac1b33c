"""``python -m oci_jupyter.evaluation``: the same as ``oci-eval``."""

import sys

from .cli import main

if __name__ == "__main__":  # vLLM spawns processes that import __main__
    sys.exit(main())
