"""Training configurations from files: a run's ``config.json``, or a user's JSON or TOML file.

``config_from_file(path, preset=None, overrides=())`` reads the file, starts from the preset it names
(``preset = "cpu-fmnist-mlp2-sgd"`` in the file, or the ``preset`` argument; without one, from
:class:`TrainConfig`'s defaults), sets the file's fields, then the ``NAME=VALUE`` overrides (as
``--set``), and validates the result. A run's ``config.json`` holds every field, so it gives that run's
configuration back exactly. Values are checked against each field's type as ``--set`` checks them
(strings are parsed as ``--set`` parses them, so ``milestones = "30,45"`` and ``esgd_gamma0 = "auto"``
work in TOML, which has no null). TOML needs Python ≥ 3.11 (``tomllib``) or the ``tomli`` package.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

from localentropy.deep.errors import DeepError
from localentropy.deep.presets import FIELD_TYPES, TrainConfig, get_preset, parse_field, validate, with_overrides


def _toml():
    """The TOML reader: tomllib (Python ≥ 3.11), else tomli when installed, else a DeepError saying so."""
    try:
        import tomllib

        return tomllib
    except ImportError:
        pass
    try:
        import tomli

        return tomli
    except ImportError:
        raise DeepError("reading a TOML configuration needs Python >= 3.11 or the tomli package "
                        "(pip install tomli); or write the configuration as JSON") from None


def read_file(path) -> dict:
    """The table of a JSON or TOML file (by its suffix: .toml is TOML, anything else JSON), keys with '-' as '_'."""
    path = Path(path)
    if not path.is_file():
        raise DeepError(f"{path}: no such configuration file")
    toml = path.suffix.lower() == ".toml"
    try:
        if toml:
            reader = _toml()
            with open(path, "rb") as fh:
                table = reader.load(fh)
        else:
            table = json.loads(path.read_text(encoding="utf-8"))
    except DeepError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError and TOMLDecodeError are ValueErrors
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DeepError(f"{path}: not valid {'TOML' if toml else 'JSON'} ({why[:200]})") from None
    if not isinstance(table, dict):
        raise DeepError(f"{path}: expected a table of configuration fields, got a {type(table).__name__}")
    return {str(k).replace("-", "_"): v for k, v in table.items()}


def field_value(field: str, v, where: str):
    """``v`` as field ``field`` holds it: numbers checked against the field's type, lists as tuples, strings parsed."""
    hint = FIELD_TYPES[field]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    bad = DeepError(f"{where}: {field} = {v!r} is not a valid {getattr(hint, '__name__', None) or str(hint)}")
    if isinstance(v, str) and hint is not str:
        try:
            return parse_field(field, v)
        except DeepError:
            raise bad from None
    if origin is typing.Union:  # Optional[float]
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        return float(v)
    if origin is tuple:
        if not isinstance(v, (list, tuple)):
            v = [v]
        kind = args[0]
        out = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                raise bad
            if kind is int:
                if not float(x).is_integer():
                    raise bad
                x = int(x)
            out.append(kind(x))
        return tuple(out)
    if hint is bool:
        if not isinstance(v, bool):
            raise bad
        return v
    if hint is int:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and float(v).is_integer()):
            raise bad
        return int(v)
    if hint is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        return float(v)
    if not isinstance(v, str):
        raise bad
    return v


def config_from_file(path, preset: str | None = None, overrides=()) -> TrainConfig:
    """The configuration of file ``path`` (module docstring), then ``overrides`` (``NAME=VALUE``), validated."""
    table = read_file(path)
    named = table.pop("preset", None)
    if named is not None and not isinstance(named, str):
        raise DeepError(f"{path}: preset must be a preset's name, got {named!r}")
    if preset is not None and named is not None and named != preset:
        raise DeepError(f"{path} names preset {named!r} but --preset is {preset!r}; give one of them")
    base = get_preset(preset or named) if (preset or named) else TrainConfig()
    unknown = sorted(set(table) - set(FIELD_TYPES))
    if unknown:
        raise DeepError(f"{path}: unknown configuration field(s) {', '.join(unknown)}; known: preset, {', '.join(FIELD_TYPES)}")
    changes = {k: field_value(k, v, str(path)) for k, v in table.items()}
    config = dataclasses.replace(base, **changes)
    validate(config)
    return with_overrides(config, overrides)


__all__ = ["config_from_file", "read_file"]
