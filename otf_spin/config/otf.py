"""Schema of the ``otf`` section of a run file (on-the-fly learning, :mod:`otf_spin.learning.otf`)."""
from __future__ import annotations

import math

from otf_spin.config.engine import Key, Section, hdf5_name
from otf_spin.config.model import SELECTION_MIN_FRAMES
from otf_spin.units import MEV

OTF = Section({
    "mode": Key("str", "threshold mode", "absolute", choices=("absolute", "adaptive")),
    "threshold": Key("quantity", "threshold on the largest per-atom field uncertainty: the "
                     "calibrated expected field error beyond the noise floor (initial value "
                     "when adaptive)", 5.0 * MEV, unit="meV/μB", dimension="data_field",
                     minimum=0.0),
    "lower_ratio": Key("float", "atoms with σ above lower_ratio × threshold become sparse "
                       "candidates", 0.5, minimum=0.0, maximum=1.0),
    "check_every": Key("int", "check the uncertainty every N steps", 1, minimum=1),
    "min_steps_between_calls": Key("int", "pace: no oracle call sooner than N steps after "
                                   "the previous", 1, minimum=1),
    "call_backoff": Key("float", "pace that grows while the model stays unsure: a call at "
                        "the first check that the pace allows (σ above threshold all through "
                        "the wait) multiplies the next wait by this factor; a call after a "
                        "quieter check resets it to min_steps_between_calls (1: a fixed "
                        "pace). Spreads the labels of a run whose σ stays above threshold "
                        "over the run instead of its start", 1.0, minimum=1.0),
    "batch_size": Key("int", "label uncertain configurations in batches of N (one refit per "
                      "batch; the run continues with the current model meanwhile)", 1,
                      minimum=1),
    "max_oracle_calls": Key("int", "stop calling the oracle after this many calls", 200,
                            minimum=0),
    "retries": Key("int", "retries of a failed oracle job before it is skipped", 1,
                   minimum=0),
    "initial_frames": Key("int", "random frames labelled before the run (cone around the "
                          "initial spins), besides the start frame itself: n frames cost "
                          "n + 1 oracle jobs", 0, minimum=0),
    "initial_cone": Key("quantity", "largest half-angle of the initial random frames: the "
                        "k-th of n is drawn in a cone of k/n × this (cover the hottest "
                        "temperature of the run)", math.radians(30.0),
                        unit="deg", dimension="angle", minimum=0.0, maximum=math.pi),
    "new_sparse_per_call": Key("int", "new sparse environments per kernel and call", 4,
                               minimum=0),
    "reoptimise_every": Key("int", "re-optimise hyperparameters every N calls (0: never)",
                            5, minimum=0),
    "reselect_terms": Key("bool", "at a re-optimisation, once the training frames number "
                          f"{SELECTION_MIN_FRAMES} (as otf-spin train: selection.MIN_FRAMES) "
                          "and each time they have grown by half since (at every one while the "
                          "last choice kept exchange-2b alone), refit from scratch so that "
                          "the model's descriptor terms are chosen again on all labels "
                          "(where the model settings select terms; every candidate fitted "
                          "within the noise floors; the terms in use kept unless a candidate "
                          "scores better by selection.MARGIN, 25 %); and at the end of the run, "
                          "if labels came since the last choice, save the model so fitted",
                          True),
    "noise_floor_energy": Key("quantity", "lower bound of σ_e when re-optimising (and "
                              "choosing terms)", 0.1 * MEV,
                              unit="meV", dimension="energy", minimum=0.0),
    "noise_floor_field": Key("quantity", "lower bound of σ_b when re-optimising (and "
                             "choosing terms)", 1.0 * MEV,
                             unit="meV/μB", dimension="data_field", minimum=0.0),
    "history": Key("int", "adaptive: number of Bayesian errors in the history", 10, minimum=2),
    "noise_guard": Key("float", "adaptive: update only if std/mean of history < this", 0.4,
                       minimum=0.0),
    "slope_guard": Key("float", "adaptive: update only if |slope|/mean per entry < this", 0.2,
                       minimum=0.0),
    "scale": Key("float", "adaptive: threshold = mean(history)·(1 + scale)", 0.0,
                 minimum=-0.9),
    "store": Key("str", "training store (HDF5, append-only)", "training_store.h5",
                 check=hdf5_name),
    "model": Key("path", "start from this model file (else: fit on the store, or on new "
                 "labels)", None),
    "model_config": Key("path", "model YAML for fits from scratch (default: train's defaults)",
                        None),
    "save_model": Key("str", "write the final model here", "otf_model.h5", check=hdf5_name),
    "checkpoint": Key("str", "checkpoint file (atomic); a run restarts from it",
                      "checkpoint.h5", check=hdf5_name),
    "checkpoint_every": Key("int", "checkpoint every N steps", 50, minimum=1),
}, "on-the-fly learning")
