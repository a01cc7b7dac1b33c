"""``python -I -B .../evaluation/judge JOB.json``: judge one job (:mod:`judge.job`).

Run as a folder, Python puts the folder itself first on ``sys.path``. Its parent goes there
instead for as long as it takes to import this folder as the package ``judge`` (its modules
import each other relatively, as they do inside oci_jupyter); then it is taken off again, so
that the candidate's code finds on ``sys.path`` only what ``python -I`` gives any script.
"""

import importlib
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)
job = importlib.import_module("judge.job")
del sys.path[0]

if __name__ == "__main__":
    sys.exit(job.main(sys.argv))
