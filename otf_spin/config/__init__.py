"""One configuration package: the schema engine and every schema, validation only.

    engine.py     strict YAML loader, ``Key``/``Section`` schemas, ``validate_file``
    run.py        run files: system, dynamics, output, hamiltonian; ``validate_run``
    model.py      model files (``otf-spin train --config``) and the model defaults
    otf.py        the ``otf`` section of on-the-fly runs
    replicas.py   the ``replicas`` section (ensembles, parallel tempering)
    generate.py   generate files; ``validate_generate``
    oracles.py    oracle blocks: plug-in registry and block schema (``type`` + the plug-in's
                  keys; each oracle class keeps its own ``schema``, the built-in ones too:
                  the plug-in contract of docs/oracles.md lets third-party oracles bring
                  their keys, so the built-in ones follow the same rule)

Validation returns read-only :class:`~otf_spin.config.engine.Settings` in internal
units; building objects from them is the factories' job (:mod:`otf_spin.factory`,
:mod:`otf_spin.model.factory`, :func:`otf_spin.oracles.from_settings`).
"""
