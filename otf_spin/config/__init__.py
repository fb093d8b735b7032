"""One configuration package: the schema engine and every schema, validation only.

    engine.py     strict YAML loader, ``Key``/``Section`` schemas, ``validate_file``
    run.py        run files: system, dynamics, output, hamiltonian; ``validate_run``
    model.py      model files (``otf-spin train --config``) and the model defaults
    otf.py        the ``otf`` section of on-the-fly runs
    replicas.py   the ``replicas`` section (ensembles, parallel tempering)
    generate.py   generate files; ``validate_generate``
    oracles.py    oracle blocks: plug-in registry and block schema

Validation returns plain values in internal units; building objects from them is the
factories' job (:mod:`otf_spin.factory`, :mod:`otf_spin.model.factory`,
:func:`otf_spin.oracles.from_settings`).
"""
