"""Risk parameters from TOML, with overrides."""

from __future__ import annotations

import math
import tomllib

import pytest

import convoyrisk as cr
from convoyrisk.config import config_text, params_from_mapping, parse_overrides, read_config
from convoyrisk.risk import RiskParams


def test_defaults_round_trip_through_toml(tmp_path) -> None:
    params = RiskParams(type_weights={"IED": 1.0, "Armed clash": 0.5}, max_precision_m=math.inf)
    path = tmp_path / "risk.toml"
    path.write_text(config_text(params), encoding="utf-8")
    assert read_config(path) == params
    assert tomllib.loads(config_text())["risk"]["class_thresholds"] == [0.001, 0.005, 0.02]


def test_partial_file_keeps_the_defaults(tmp_path) -> None:
    path = tmp_path / "risk.toml"
    path.write_text(
        '[risk]\nbandwidth_m = 3000\nkernel = "triangular"\n[risk.type_weights]\nIED = 2\n',
        encoding="utf-8",
    )
    p = read_config(path)
    assert p.bandwidth_m == 3000.0
    assert p.kernel == "triangular"
    assert p.type_weights == {"IED": 2.0}
    assert p.half_life_days == RiskParams().half_life_days


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[risk]\nbandwith_m = 3\n", "Unknown key.*bandwith_m"),
        ("[risk]\nbandwidth_m = 'wide'\n", "must be a number"),
        ("[risk]\nkernel = 'gaussian'\n", "kernel"),
        ("[risk]\nconserve_mass = 1\n", "true or false"),
        ("[riks]\nbandwidth_m = 3\n", "unknown table"),
        ("[risk\n", "not valid TOML"),
        ("[risk]\nclass_thresholds = [1, 'a']\n", "three numbers"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path, text, match) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(cr.InputError, match=match):
        read_config(path)


def test_missing_file() -> None:
    with pytest.raises(cr.ConvoyRiskError, match="does not exist"):
        read_config("/nonexistent/risk.toml")


def test_overrides() -> None:
    values = parse_overrides(["bandwidth_m=2500", "junction=none", "conserve_mass=false"])
    p = params_from_mapping(values, base=RiskParams(half_life_days=30.0))
    assert (p.bandwidth_m, p.junction, p.conserve_mass, p.half_life_days) == (
        2500.0,
        "none",
        False,
        30.0,
    )
    with pytest.raises(cr.InputError, match="KEY=VALUE"):
        parse_overrides(["bandwidth"])
