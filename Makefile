# The two commands of the README. Both set up whatever is missing first.
.PHONY: lab test

lab:  ## set up and launch JupyterLab with oci_jupyter and the bundled model
	@scripts/lab.sh

test:  ## set up and run every test (lint, pytest, vLLM engine, Galata UI)
	@scripts/test.sh
