"""Choice of the descriptor terms by cross-validation (otf_spin/model/selection.py): the
rule, the candidates, and that it adds a term where the data need it and only there."""
import os
import warnings

import numpy as np
import pytest

from otf_spin.config.model import MODEL
from otf_spin.core import Frame
from otf_spin.learning.paper_sets import paper_oracle
from otf_spin.model import SparseGPR, build_model, default_settings, load, save, selection
from otf_spin.oracles import load_file
from otf_spin.system import bulk, random_cone, random_sphere

ROOT = os.path.join(os.path.dirname(__file__), "..")


def settings(**changes):
    """Small exchange-2b settings (fast fits) that select their terms."""
    s = MODEL.validate({"descriptor": {"r_cut": 4.5, "n_max": 6, "l_max": 2},
                        "kernels": [{"zeta": 1, "normalize": False, "n_sparse": None}],
                        "select_terms": True, **changes})
    return s


def cone_frames(oracle, n, rng):
    frames = []
    for _ in range(n):
        system = bulk("bcc", 2.83, (2, 2, 2), moment=2.2)
        system.set_directions(random_cone(len(system), random_sphere(1, rng)[0],
                                          rng.uniform(0.3, 1.2), rng))
        r = oracle.compute(system)
        frames.append(Frame(system, {"energy": r["energy"], "fields": r["fields"]}))
    return frames


def rmse(model, frames):
    dE = [(model.predict(f.system, False)["energy"] - f.energy) / len(f.system) for f in frames]
    return float(np.sqrt(np.mean(np.square(dE))))


def fit(s, frames):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_model(s).fit(frames)


@pytest.fixture(scope="module")
def pseudo_dipolar():
    rng = np.random.default_rng(7)
    oracle = load_file(os.path.join(ROOT, "input_examples", "oracle_bccFe_pseudo_dipolar.yaml"))
    return cone_frames(oracle, 12, rng), cone_frames(oracle, 5, rng)


def test_choose_keeps_the_cheapest_within_tolerance():
    rows = [{"cv": {"energy": 1.0, "field": 1.0}}, {"cv": {"energy": 0.95, "field": 0.95}},
            {"cv": {"energy": 0.5, "field": 0.5}}]
    assert selection.choose(rows) == 2                 # a real gain pays for the cost
    rows[2]["cv"] = {"energy": 0.93, "field": 0.93}
    assert selection.choose(rows) == 0                 # within 10 % of the best: cheapest
    assert selection.choose(rows, tolerance=1.01) == 2
    assert selection.score({"energy": 4.0, "field": 1.0}) == pytest.approx(np.log(2.0))
    rows = [{"cv": {"energy": np.nan, "field": 3.0}}, {"cv": {"energy": 1e-9, "field": 2.0}}]
    assert selection.scores(rows) == pytest.approx([np.log(3.0), np.log(2.0)])   # fields only


def test_candidates_add_each_term_with_a_linear_kernel():
    s = settings()
    base = selection.candidate_settings(s, ())
    both = selection.candidate_settings(s, ("exchange_3b", "dipole_2b"))
    for c in (base, both):
        assert c["select_terms"] is False and c["kernels"][0] == s["kernels"][0]
        assert c["descriptor"]["n_max"] == 6
    assert base["descriptor"]["exchange_3b"] is None and len(base["kernels"]) == 1
    assert both["descriptor"]["exchange_3b"]["n_max"] == 2          # the term's defaults
    assert both["descriptor"]["dipole_2b"]["degree"] == 2
    assert [k["term"] for k in both["kernels"]] == ["exchange_2b", "exchange_3b", "dipole_2b"]
    assert all(k["zeta"] == 1 and k["n_sparse"] is None for k in both["kernels"][1:])
    assert s["descriptor"]["exchange_3b"] is None                   # input not changed
    named = MODEL.validate({"descriptor": {"dipole_2b": {}}, "select_terms": True})
    assert not selection.selects(named) and selection.selects(s)


def test_defaults_select_and_named_terms_are_used_as_written():
    assert default_settings()["select_terms"] is True
    assert type(build_model()) is selection.TermSelectingGPR
    written = MODEL.validate({"descriptor": {"exchange_3b": {}},
                              "kernels": [{"zeta": 1, "normalize": False, "n_sparse": None},
                                          {"zeta": 1, "normalize": False, "n_sparse": None,
                                           "term": "exchange_3b"}]})
    assert type(build_model(written)) is SparseGPR
    assert type(build_model(dict(default_settings(), select_terms=False))) is SparseGPR


def test_anisotropic_data_get_dipole_2b_and_beat_exchange_only(pseudo_dipolar, tmp_path):
    train, test = pseudo_dipolar
    model = fit(settings(), train)
    assert type(model) is SparseGPR and model.settings["select_terms"] is False
    chosen = [r for r in model.selection if r["chosen"]]
    assert len(chosen) == 1 and "dipole_2b" in chosen[0]["terms"]
    assert model.settings["descriptor"]["dipole_2b"] is not None
    exchange_only = fit(settings(select_terms=False), train)
    assert rmse(model, test) < 0.1 * rmse(exchange_only, test)
    path = tmp_path / "m.h5"
    save(model, path)
    back = load(path)
    assert back.settings == model.settings
    p, q = model.predict(test[0].system, False), back.predict(test[0].system, False)
    assert p["energy"] == q["energy"] and np.array_equal(p["fields"], q["fields"])


def test_heisenberg_data_keep_exchange_2b_alone():
    rng = np.random.default_rng(8)
    train = cone_frames(paper_oracle(), 12, rng)
    model = fit(settings(), train)
    assert model.settings["descriptor"]["exchange_3b"] is None
    assert model.settings["descriptor"]["dipole_2b"] is None
    assert len(model.kernels) == 1 and [r["chosen"] for r in model.selection][0]
    few = fit(settings(), train[:selection.MIN_FRAMES - 1])     # too few frames to tell
    assert len(few.selection) == 1 and few.selection[0]["terms"] == ()


def test_cli_train_reports_the_chosen_terms(pseudo_dipolar, tmp_path, capsys):
    from otf_spin.cli import main
    from otf_spin.io.extxyz import write_frames

    write_frames(tmp_path / "train.xyz", pseudo_dipolar[0])
    config = tmp_path / "model.yaml"
    config.write_text("descriptor: {r_cut: 4.5, n_max: 6, l_max: 2}\n"
                      "kernels: [{zeta: 1, normalize: false, n_sparse: null}]\n")
    assert main(["train", "--data", str(tmp_path / "train.xyz"), "--out",
                 str(tmp_path / "m.h5"), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "chosen by leave-one-frame-out cross-validation" in out
    assert "*†exchange_2b + dipole_2b" in out              # † off the compiled engine
    assert "  exchange_2b " in out
    assert load(tmp_path / "m.h5").settings["descriptor"]["dipole_2b"] is not None


def test_the_settings_text_gives_the_selections_fewest_frames():
    """select_terms' description (and reselect_terms') states the number of frames the
    selection really needs (selection.MIN_FRAMES), not a stale one."""
    from otf_spin.config.otf import OTF

    described = MODEL.keys["select_terms"].describe()
    assert f"needs >= {selection.MIN_FRAMES} frames" in described
    assert f"frames number {selection.MIN_FRAMES} " in OTF.keys["reselect_terms"].describe()


def test_the_selection_table_of_energy_only_frames_says_field_n_a():
    """Frames without field labels have no CV field error: the table says "field n/a",
    never "field nan meV/μB"."""
    rng = np.random.default_rng(3)
    frames = [Frame(f.system, {"energy": f.energy})
              for f in cone_frames(paper_oracle(), selection.MIN_FRAMES, rng)]
    text = selection.describe(fit(settings(), frames).selection)
    assert len(text.splitlines()) > 2 and "nan" not in text
    assert all("field n/a," in line and " meV/atom" in line for line in text.splitlines()[1:])
