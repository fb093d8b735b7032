"""Extxyz data contract through ASE, atomic writes, strict YAML, units at the boundary."""
import os

import ase.io
import numpy as np
import pytest

from otf_spin.config.engine import Key, Section, load_yaml
from otf_spin.core import ConfigError, DataFileError, Frame, UnitError
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.units import MEV, MRY, parse_quantity


def test_extxyz_round_trip_through_ase(fe16, rng, tmp_path):
    fe16.magnitudes = rng.uniform(1.5, 2.3, len(fe16))
    full = Frame(fe16, {"energy": 1.25, "fields": rng.normal(size=(16, 3)),
                        "forces": rng.normal(size=(16, 3))}, {"set": "x"})
    energy_only = Frame(fe16.copy(), {"energy": -0.5})
    fields_only = Frame(fe16.copy(), {"fields": rng.normal(size=(16, 3))})
    path = tmp_path / "data.xyz"
    write_frames(path, [full, energy_only, fields_only])
    # plain ASE sees the contract names
    images = ase.io.read(path, index=":", format="extxyz")
    assert images[0].calc.results["energy"] == pytest.approx(1.25)
    # ASE writes per-atom columns with 8 decimals
    np.testing.assert_allclose(images[0].calc.results["magmoms"], fe16.moments, atol=1e-8)
    np.testing.assert_allclose(images[0].arrays["fields"], full.results["fields"], atol=1e-8)
    frames = read_frames(path)
    assert [sorted(f.results) for f in frames] == [["energy", "fields", "forces"], ["energy"],
                                                   ["fields"]]
    back = frames[0]
    np.testing.assert_allclose(back.system.moments, fe16.moments, atol=1e-8)
    np.testing.assert_allclose(back.system.positions, fe16.positions, atol=1e-8)
    np.testing.assert_allclose(back.results["forces"], full.results["forces"], atol=1e-8)
    assert back.info["set"] == "x"
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)


def test_extxyz_append_and_directions_only(fe16, tmp_path):
    path = tmp_path / "d.xyz"
    atoms = fe16.to_ase()
    del atoms.arrays["initial_magmoms"]
    atoms.arrays["directions"] = fe16.directions
    ase.io.write(path, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="no default moment"):
        read_frames(path)
    frame = read_frames(path, moment=1.9)[0]
    np.testing.assert_allclose(frame.system.magnitudes, 1.9)
    write_frames(path, [frame], append=True)
    assert len(read_frames(path, moment=1.9)) == 2


def test_extxyz_errors(tmp_path, fe16):
    with pytest.raises(DataFileError, match="no such file"):
        read_frames(tmp_path / "missing.xyz")
    bad = tmp_path / "bad.xyz"
    bad.write_text("this is not xyz\n")
    with pytest.raises(DataFileError, match="bad.xyz"):
        read_frames(bad)
    nomag = tmp_path / "nomag.xyz"
    atoms = fe16.to_ase()
    del atoms.arrays["initial_magmoms"]
    ase.io.write(nomag, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="frame 0: no 'magmoms'"):
        read_frames(nomag)
    nan = tmp_path / "nan.xyz"
    with pytest.raises(DataFileError, match="nan.xyz: frame 0 \\(not written\\): 'energy' is "
                                            "not finite"):
        write_frames(nan, [Frame(fe16, {"energy": float("nan")})])
    assert not nan.exists()
    atoms = fe16.to_ase()
    atoms.info["energy"] = float("nan")
    ase.io.write(nan, atoms, format="extxyz")
    with pytest.raises(DataFileError, match="nan.xyz: frame 0: 'energy' is not finite"):
        read_frames(nan)


def test_atomic_write_keeps_old_file_on_failure(fe16, tmp_path):
    path = tmp_path / "keep.xyz"
    write_frames(path, [Frame(fe16, {"energy": 1.0})])
    before = path.read_bytes()
    with pytest.raises(Exception):
        write_frames(path, [Frame(fe16, {"energy": 2.0}), object()])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.xyz"]


def test_units_parse():
    assert parse_quantity(0.1, "time", "fs") == pytest.approx(1e-4)
    assert parse_quantity("0.1 fs", "time", "ps") == pytest.approx(1e-4)
    assert parse_quantity("1 mRy", "energy", "meV") == pytest.approx(MRY)
    assert parse_quantity(19.48, "energy", "meV") == pytest.approx(19.48 * MEV)
    assert MRY == pytest.approx(13.605693e-3)
    with pytest.raises(UnitError, match="temperature unit, expected time"):
        parse_quantity("300 K", "time", "fs")
    with pytest.raises(UnitError, match="unknown unit"):
        parse_quantity("3 parsec", "length", "angstrom")
    with pytest.raises(UnitError):
        parse_quantity(True, "length", "angstrom")


def test_yaml_duplicate_keys_are_errors(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text("type: heisenberg\nmoment: 2.2\nmoment: 2.3\n")
    with pytest.raises(ConfigError, match=r"dup.yaml: line 3: duplicate key 'moment' "
                                          r"\(first on line 2\)"):
        load_yaml(path)


SCHEMA = Section({
    "timestep": Key("quantity", "time step", unit="fs", dimension="time"),
    "steps": Key("int", "number of steps", 10, minimum=1),
    "nested": Key("section", "sub", None, section=Section({
        "flag": Key("bool", "a flag", False),
        "mode": Key("str", "mode", "a", choices=("a", "b")),
    })),
})


@pytest.mark.parametrize("data, message", [
    ({"timestep": 1, "stepz": 3}, "stepz: unknown key"),
    ({"steps": 3}, "timestep: required key is missing"),
    ({"timestep": "1 K"}, "timestep: unit 'K' is a temperature unit"),
    ({"timestep": 1, "steps": 2.5}, "steps: expected an integer"),
    ({"timestep": 1, "steps": 0}, "steps: 0 is below the minimum"),
    ({"timestep": 1, "nested": {"flag": "yes"}}, "nested.flag: expected true or false"),
    ({"timestep": 1, "nested": {"mode": "c"}}, "nested.mode: 'c' is not one of a, b"),
    ({"timestep": 1, "nested": {"extra": 1}}, "nested.extra: unknown key"),
])
def test_schema_errors_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        SCHEMA.validate(data)


def test_schema_fills_defaults_and_converts():
    out = SCHEMA.validate({"timestep": "2 fs", "nested": {}})
    assert out == {"timestep": pytest.approx(0.002), "steps": 10,
                   "nested": {"flag": False, "mode": "a"}}


def test_defaults_are_not_shared_between_validations():
    schema = Section({"items": Key("list", "a list", [1, 2], item=Key("int", "item"))})
    first = schema.validate({})
    first["items"].append(3)
    assert schema.validate({})["items"] == [1, 2]


def test_validated_settings_are_read_only_and_thaw_to_plain_copies():
    import json
    import pickle

    from otf_spin.config.engine import Settings, thaw
    from otf_spin.config.model import MODEL

    settings = MODEL.validate({})
    assert isinstance(settings, Settings) and isinstance(settings["descriptor"], Settings)
    assert all(isinstance(k, Settings) for k in settings["kernels"])
    assert settings.descriptor.r_cut == settings["descriptor"]["r_cut"]
    for edit in (lambda s: s.__setitem__("optimise", False), lambda s: s.update(optimise=0),
                 lambda s: s["descriptor"].pop("r_cut"), lambda s: s.setdefault("x", 1),
                 lambda s: s["kernels"][0].__setitem__("zeta", 2)):
        with pytest.raises(TypeError, match="read-only"):
            edit(settings)
    plain = thaw(settings)
    assert type(plain) is dict and type(plain["kernels"][0]) is dict and plain == settings
    plain["descriptor"]["r_cut"] = 1.0                   # the copy is editable ...
    assert settings["descriptor"]["r_cut"] == 7.0        # ... and independent
    assert json.loads(json.dumps(settings)) == json.loads(json.dumps(plain | {
        "descriptor": settings["descriptor"]}))
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and isinstance(again["noise"], Settings)
    with pytest.raises(AttributeError):
        settings.no_such_key


def test_unit_signs_typed_on_a_keyboard_and_messages_in_words():
    """The micro sign µ (U+00B5, what keyboards type) reads as μ (U+03BC), the ångström
    sign Å (U+212B) as Å; errors name dimensions in words with their article."""
    from otf_spin.units import parse_quantity

    assert parse_quantity("2.2 \u00b5B", "moment", "μB") == 2.2
    assert parse_quantity("2 meV/\u00b5B", "data_field", "eV/μB") == pytest.approx(2e-3)
    assert parse_quantity("3 \u212b", "length", "Å") == 3.0
    with pytest.raises(UnitError, match=r"unknown unit 'x' \(expected an energy unit"):
        parse_quantity("1 x", "energy", "eV")
    with pytest.raises(UnitError, match=r"'T' is a magnetic field \(T\) unit, expected "
                                        r"transverse field \(eV/μB\)"):
        parse_quantity("1 T", "data_field", "eV/μB")


def test_collinear_moments_are_read_along_z_as_from_ase(tmp_path):
    """New-user review: a collinear extxyz (one magmom per atom, as a collinear code's
    output or `Atoms(magmoms=[...])`) was refused by the commands but taken by
    SpinSystem.from_ase and the calculator. Both now read ±z moments."""
    import ase.io
    from ase.build import bulk as ase_bulk
    from ase.calculators.singlepoint import SinglePointCalculator

    from otf_spin.system import SpinSystem

    atoms = ase_bulk("Fe", "bcc", 2.83, cubic=True).repeat((2, 1, 1))
    signs = np.array([2.2, -2.1, 2.3, 2.2])
    atoms.set_initial_magnetic_moments(signs)
    ase.io.write(tmp_path / "initial.xyz", atoms, format="extxyz")
    result = atoms.copy()
    result.calc = SinglePointCalculator(result, magmoms=signs, energy=0.0)
    ase.io.write(tmp_path / "result.xyz", result, format="extxyz")
    expect = SpinSystem.from_ase(atoms).moments
    np.testing.assert_array_equal(expect[:, 2], signs)
    for name in ("initial.xyz", "result.xyz"):
        np.testing.assert_array_equal(read_frames(tmp_path / name)[0].system.moments, expect)
