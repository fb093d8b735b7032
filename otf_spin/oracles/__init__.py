"""Reference calculators ("oracles"), discovered through the entry-point group
``otf_spin.oracles`` (``importlib.metadata``), never by scanning modules.

Each entry point names an :class:`~otf_spin.oracles.base.Oracle` subclass; an
oracle YAML block is ``type: <entry-point name>`` plus that class's schema keys
(registry and block schema: :mod:`otf_spin.config.oracles`).
"""
from __future__ import annotations

import os

from otf_spin.config.engine import REQUIRED, load_yaml
from otf_spin.config.oracles import available, block_schema, get_class, validate_block
from otf_spin.core import ConfigError, Frame, OracleFailure
from otf_spin.oracles.base import Oracle, physics_settings
from otf_spin.progress import progress_bar

__all__ = ["Oracle", "OracleFailure", "available", "get_class", "from_block", "from_settings",
           "load_file", "block_schema"]


def from_settings(settings: dict, context: dict | None = None) -> Oracle:
    """Build the oracle of a validated oracle block (:func:`validate_block`)."""
    values = dict(settings)
    return get_class(values.pop("type")).from_config(values, context or {})


def from_block(block: dict, where: str = "", base_dir: str = ".",
               context: dict | None = None) -> Oracle:
    """Validate an oracle block and build the oracle."""
    return from_settings(validate_block(block, where, base_dir), context)


def load_file(path, context: dict | None = None) -> Oracle:
    """Build the oracle described by an oracle YAML file."""
    data = load_yaml(path, "oracle")
    try:
        return from_block(data, base_dir=os.path.dirname(os.path.abspath(path)), context=context)
    except ConfigError as exc:
        raise ConfigError(f"{os.fspath(path)}: {exc}") from None


def label_frames(oracle: Oracle, frames, progress: bool = False, retries: int = 0,
                 labelled=(), written=None) -> list:
    """Label extxyz :class:`~otf_spin.core.Frame` objects; returns new frames.

    Results replace the frames' labels; moments take the oracle's magnitudes; each frame's
    info gets ``oracle`` (the name) and ``oracle_settings`` (:func:`settings_digest`).
    ``labelled``: the first frames' labels, already made (a resumed labelling: taken as
    they are). ``written(out)``: called with the labelled frames after each new one (the
    command writes them, so a failure or an interrupt loses no finished label). Each
    frame is tried ``retries`` + 1 times; then an :class:`OracleFailure` names the frame.
    """
    out = list(labelled)
    digest = settings_digest(oracle.settings())
    for k, frame in enumerate(progress_bar(frames[len(out):], "labelling", enabled=progress),
                              start=len(out)):
        for attempt in range(retries + 1):
            system = frame.system.copy()
            try:
                results = oracle.compute(system)
                break
            except OracleFailure as exc:
                if attempt == retries:
                    raise OracleFailure(f"frame {k}", exc.kind, exc.reason) from None
        if "magmoms" in results:
            system.moments = results["magmoms"]
        labels = {key: results[key] for key in ("energy", "fields", "forces") if key in results}
        out.append(Frame(system, labels, dict(frame.info, oracle=oracle.name,
                                               oracle_settings=digest)))
        if written is not None:
            written(out)
    return out


def comparable_settings(settings: dict) -> dict:
    """An oracle's :func:`~otf_spin.oracles.base.physics_settings` in the form labels of
    the same oracle share wherever the project lives and whichever version wrote them:
    path-valued keys reduced to their file names (a project moved to another machine),
    keys at their schema default left out (keys a later version adds), after a JSON
    round trip (as the training store keeps them). File contents: :func:`file_digests`."""
    import json

    try:
        schema = get_class(settings.get("type")).schema
    except ConfigError:     # an oracle no longer installed: compared as written
        schema = None
    return json.loads(json.dumps(_comparable(physics_settings(settings), schema),
                                 default=str))


def _comparable(values: dict, schema) -> dict:
    import json

    plain = lambda v: json.loads(json.dumps(v, default=str))     # noqa: E731
    out = {}
    for name, value in values.items():
        key = schema.keys.get(name) if schema is not None else None
        if key is not None:
            if key.kind == "path" and isinstance(value, str):
                value = os.path.basename(value)
            elif key.kind == "section" and key.section is not None and isinstance(value, dict):
                value = _comparable(value, key.section)
            if key.default is not REQUIRED and plain(value) == plain(key.default):
                continue
        out[name] = value
    return out


def file_digests(settings: dict) -> dict:
    """{dotted key: "sha256:…"} of the files an oracle's settings name (path-valued keys,
    sections included, e.g. ``uppasd.jfile``) that exist here: their contents decide the
    labels as much as the settings do, which :func:`comparable_settings` compares by file
    name only. Empty for oracles without path keys."""
    try:
        schema = get_class(settings.get("type")).schema
    except ConfigError:
        return {}
    return _file_digests(settings, schema, "")


def _file_digests(values: dict, schema, prefix: str) -> dict:
    import hashlib

    out = {}
    for name, value in values.items():
        key = schema.keys.get(name)
        if key is None:
            continue
        if key.kind == "path" and isinstance(value, str) and os.path.isfile(value):
            with open(value, "rb") as f:
                out[prefix + name] = "sha256:" + hashlib.sha256(f.read()).hexdigest()[:16]
        elif key.kind == "section" and key.section is not None and isinstance(value, dict):
            out.update(_file_digests(value, key.section, f"{prefix}{name}."))
    return out


def files_difference(old: dict, new: dict) -> str | None:
    """None if two :func:`file_digests` agree on every file both name, else the first
    differing one as "key: file contents differ"."""
    for key in sorted(set(old) & set(new)):
        if old[key] != new[key]:
            return f"{key}: file contents differ"
    return None


def settings_difference(old: dict, new: dict) -> str | None:
    """None if two oracle settings dicts decide the same labels
    (:func:`comparable_settings`), else the first differing key as "key: old → new"."""
    old, new = comparable_settings(old), comparable_settings(new)
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return f"{key}: {old.get(key, '(default)')!r} → {new.get(key, '(default)')!r}"
    return None


def settings_digest(settings: dict) -> str:
    """Short sha256 of an oracle's :func:`comparable_settings` and, where it names files,
    their contents (:func:`file_digests`): labels with equal digests are the same
    oracle's."""
    import hashlib
    import json

    payload = comparable_settings(settings)
    files = file_digests(settings)
    if files:           # (oracles without input files keep the digests they always had)
        payload = {"settings": payload, "files": files}
    text = json.dumps(payload, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]   # (a str in extxyz)


def labelled_prefix(done, frames, oracle: Oracle) -> list:
    """The frames of ``done`` (read from an earlier labelling's output) if they are this
    oracle's labels (:func:`settings_digest`) of the first ``len(done)`` of ``frames``
    (same cell, positions and spin directions), else [] (labelling starts over)."""
    import numpy as np

    digest = settings_digest(oracle.settings())
    if len(done) > len(frames):
        return []
    for old, new in zip(done, frames):
        a, b = old.system, new.system
        if old.info.get("oracle_settings") != digest or len(a) != len(b) or not (
                np.allclose(a.cell, b.cell, atol=1e-8) and
                np.allclose(a.positions, b.positions, atol=1e-8) and
                np.all(np.einsum("ij,ij->i", a.directions, b.directions) > 1 - 1e-9)):
            return []
    return list(done)
