"""``type: command`` — any program as an oracle, through extxyz files.

The frame is written to ``input.xyz`` (data contract: per-atom ``magmoms`` in μB,
positions in Å), the command runs in the job directory (``{input}`` and ``{output}``
in it are replaced by the file names), and ``output.xyz`` is read back: info
``energy`` (eV, relative to the collinear FM state), per-atom ``fields`` (eV/μB,
transverse; the longitudinal part is removed), optional ``magmoms`` and ``forces``.
"""
from __future__ import annotations

import os

from otf_spin.config.engine import Key, Section
from otf_spin.config.oracles import MOMENT_KEY
from otf_spin.core import Frame
from otf_spin.io.extxyz import read_frames, write_frames
from otf_spin.oracles.fileio import FileOracle, Profile, job_keys
from otf_spin.system import transverse

SCHEMA = Section({
    "command": Key("str", "command line run in each job directory ({input}, {output} are "
                   "replaced by the file names, {here} by the YAML file's folder)"),
    **job_keys(3600.0),
    "input": Key("str", "input file name", "input.xyz"),
    "output": Key("str", "output file name", "output.xyz"),
    "moment": MOMENT_KEY,
}, "any command reading and writing extxyz")


class CommandOracle(FileOracle):
    name = "command"
    implemented_properties = ("energy", "fields", "magmoms", "forces")
    schema = SCHEMA

    def __init__(self, profile, workdir="oracle_jobs", input_name="input.xyz",
                 output_name="output.xyz", moment=2.2, settings=None):
        super().__init__(profile, workdir)
        self.input_name, self.output_name, self.moment = input_name, output_name, moment
        self._settings = settings or {}

    @classmethod
    def from_config(cls, block, context=None):
        return cls(Profile(block["command"], block["timeout"]), block["workdir"],
                   block["input"], block["output"], block["moment"], dict(block))

    def settings(self):
        return {"type": self.name, **self._settings}

    def write_inputs(self, system, directory):
        write_frames(os.path.join(directory, self.input_name), [Frame(system)])
        return {"input": self.input_name, "output": self.output_name}

    def read_outputs(self, system, directory):
        path = os.path.join(directory, self.output_name)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{self.output_name} was not written")
        frame = read_frames(path, moment=self.moment)[0]
        if len(frame.system) != len(system):
            raise ValueError(f"{self.output_name} has {len(frame.system)} atoms, expected "
                             f"{len(system)}")
        results = dict(frame.results)
        if "energy" not in results and "fields" not in results:
            raise ValueError(f"{self.output_name} carries neither energy nor fields")
        e = system.directions
        if "fields" in results:
            f = results["fields"]
            results["fields"] = transverse(f, e)
        results["magmoms"] = frame.system.moments
        return results
