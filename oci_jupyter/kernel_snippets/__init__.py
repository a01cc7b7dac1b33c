"""The Python that runs silently in the user's kernel, each written once.

``%%oci`` imports these modules (through :mod:`oci_jupyter.kernel_context` and
:mod:`oci_jupyter.prompts.values`); the sidebar sends the same files' text to the notebook's
kernel as a silent user expression (``scripts/kernel-snippets.js`` copies them into
``src/kernel/snippets.generated.ts`` at build time). So both surfaces describe a namespace by
the same rules, and a rule changes in one place.

Each module is therefore standalone: the standard library only, no import of this package, and
Python 3.8 syntax (the notebook's kernel may run an older Python than the server). Each ends with
``kernel_reply``, the sidebar's entry point: its result's repr is the answer as JSON.
"""
