"""The judging program: what runs in the separate process that decides pass or fail.

It runs as a folder in its own short-lived Python process (``python -I -B .../judge JOB.json``:
:mod:`.__main__`), never in oci-eval's process nor in the kernel the model used, and it imports
nothing of oci_jupyter outside this folder (the standard library only): it runs on its own,
wherever the package is installed. oci-eval imports the same modules for their texts.

A job names the candidate code (the model's definitions), its entry point, and the parts to
judge; each part gets a verdict ``{status, detail, feedback}``:

- ``asserts``: test statements that call the entry point by name (MBPP's original
  ``assertion``), run against the candidate.
- ``check``: a ``check(candidate)`` function (HumanEval's ``test``), called with the candidate.
- ``inputs``: differential testing, as EvalPlus does for MBPP+: the canonical solution runs
  on every input first (its results are the expected outputs, its times set each input's
  time limit), then the candidate runs on the same inputs (a deep copy each time, with its
  output swallowed), its ``base_input`` part and its ``plus_input`` part judged apart.

``feedback`` is the text the OpenCodeInterpreter paper's harness gives the model for that
failure (``oci-eval --feedback tests``; :mod:`.verdicts`). :mod:`.asserts` judges tests
written as asserts, :mod:`.differential` MBPP+'s inputs, :mod:`.job` runs a job's parts.

The verdicts are written to ``job["verdict"]`` as JSON after every part, so that a process
killed at its time limit still leaves what it finished.
"""
