"""Code completion as the user types: the OpenAI completions endpoint (:mod:`.handlers`), its
request (:mod:`.schema`) and ghost text's prompt, the middle of the notebook
(:mod:`.notebook`). The engines format the model's own infilling prompt
(:mod:`oci_jupyter.engine.fim`)."""
