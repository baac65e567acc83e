"""Risk-model parameters from a TOML file, with overrides.

A configuration file holds a ``[risk]`` table whose keys are the fields of
:class:`convoyrisk.risk.RiskParams`; keys left out keep their defaults::

    [risk]
    segment_length_m = 500
    bandwidth_m = 3000
    kernel = "quartic"          # uniform, triangular, epanechnikov, quartic, triweight
    junction = "equal-split"    # or "none"
    half_life_days = 60
    class_thresholds = [0.001, 0.005, 0.02]

    [risk.type_weights]
    IED = 1.0
    "Armed clash" = 0.5

:func:`config_text` writes the full set with the defaults, ready to edit.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import tomllib
from pathlib import Path
from typing import Any

from ._errors import InputError, MissingInputError
from .risk import RiskParams

SECTION = "risk"


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(RiskParams)}


def _coerce(name: str, value: Any, where: str) -> Any:  # noqa: ANN401, C901 - TOML values, one branch per type
    kind = _field_types()[name]
    bad = f"`{name}` in {where} must be"
    # a bare TOML date (observed_since = 2023-01-01) is the text of that date
    is_date = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    value = value.isoformat() if kind == "str" and is_date else value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            msg = f"{bad} a number, got {value!r}."
            raise InputError(msg)
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            msg = f"{bad} a whole number, got {value!r}."
            raise InputError(msg)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            msg = f"{bad} true or false, got {value!r}."
            raise InputError(msg)
        return value
    if kind == "str":
        if not isinstance(value, str):
            msg = f"{bad} a string, got {value!r}."
            raise InputError(msg)
        return value
    if name == "class_thresholds":
        if not isinstance(value, list | tuple) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            msg = f"{bad} a list of three numbers, got {value!r}."
            raise InputError(msg)
        return tuple(float(v) for v in value)
    if name == "type_weights":
        if not isinstance(value, dict):
            msg = f"{bad} a table of type = weight, got {value!r}."
            raise InputError(msg)
        return {str(k): _coerce_weight(k, v, where) for k, v in value.items()}
    msg = f"`{name}` cannot be set from {where}."  # pragma: no cover - every field is handled
    raise InputError(msg)


def _coerce_weight(key: str, value: Any, where: str) -> float:  # noqa: ANN401 - TOML values
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"`type_weights.{key}` in {where} must be a number, got {value!r}."
        raise InputError(msg)
    return float(value)


def params_from_mapping(
    values: dict[str, Any], *, base: RiskParams | None = None, where: str = "the overrides"
) -> RiskParams:
    """`base` (or the defaults) with `values` applied, each checked and converted.

    Examples
    --------
    >>> params_from_mapping({"bandwidth_m": 2000, "kernel": "triangular"}).bandwidth_m
    2000.0
    """
    names = _field_types()
    unknown = sorted(set(values) - set(names))
    if unknown:
        msg = (
            f"Unknown key(s) {', '.join(unknown)} in {where}: "
            f"valid keys are {', '.join(sorted(names))}."
        )
        raise InputError(msg)
    coerced = {k: _coerce(k, v, where) for k, v in values.items()}
    return (base or RiskParams()).replace(**coerced)


def read_config(path: str | Path, *, base: RiskParams | None = None) -> RiskParams:
    """Parameters from the ``[risk]`` table of a TOML file.

    Raises
    ------
    MissingInputError
        If the file does not exist.
    InputError
        If it is not valid TOML, or a key is unknown or has the wrong type.
    """
    path = Path(path)
    if not path.exists():
        msg = f"Config file {path} does not exist: pass an existing TOML file with `--config`."
        raise MissingInputError(msg)
    if not path.is_file():
        msg = f"Config path {path} is not a file: pass a TOML file with `--config`."
        raise InputError(msg)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"Config file {path} is not valid TOML: {exc}."
        raise InputError(msg) from exc
    extra = sorted(set(doc) - {SECTION})
    if extra:
        msg = (
            f"Config file {path} has unknown table(s) {', '.join(extra)}: "
            f"put the keys in [{SECTION}]."
        )
        raise InputError(msg)
    table = doc.get(SECTION, {})
    return params_from_mapping(table, base=base, where=f"[{SECTION}] of {path}")


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` strings to a mapping; values are read as TOML (strings may be bare).

    Examples
    --------
    >>> parse_overrides(["bandwidth_m=2000", "kernel=uniform", "class_thresholds=[0.1,0.2,0.3]"])
    {'bandwidth_m': 2000, 'kernel': 'uniform', 'class_thresholds': [0.1, 0.2, 0.3]}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            msg = f"Override {item!r} is not KEY=VALUE: write e.g. `--set bandwidth_m=2000`."
            raise InputError(msg)
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        out[key.strip()] = value
    return out


def _toml_value(value: Any) -> str:  # noqa: ANN401 - parameter values
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    msg = f"cannot write {value!r} as TOML"  # pragma: no cover - every field is handled
    raise TypeError(msg)


def config_text(params: RiskParams | None = None) -> str:
    """The ``[risk]`` table of `params` (the defaults if None) as TOML text.

    Examples
    --------
    >>> read = tomllib.loads(config_text())["risk"]
    >>> read["bandwidth_m"], read["kernel"]
    (5000.0, 'quartic')
    """
    params = params or RiskParams()
    lines = [f"[{SECTION}]"]
    for f in dataclasses.fields(params):
        if f.name == "type_weights":
            continue
        lines.append(f"{f.name} = {_toml_value(getattr(params, f.name))}")
    lines.append("")
    lines.append(f"[{SECTION}.type_weights]")
    for key, weight in params.type_weights.items():
        lines.append(f"{_toml_value(str(key))} = {_toml_value(float(weight))}")
    return "\n".join(lines) + "\n"
