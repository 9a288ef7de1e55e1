"""Configuration: frozen dataclasses <-> plain dicts / YAML, strict keys, dotted overrides.

Every configurable thing is a frozen dataclass next to the code that uses it. This module
turns them into JSON/YAML-friendly dicts and back. Unknown keys are errors, so a typo in a
recipe never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config dict or YAML file does not match its dataclass."""


def to_dict(config: Any) -> dict[str, Any]:
    """Converts a (nested) dataclass into a plain dict; tuples become lists."""
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"expected a dataclass instance, got {type(config).__name__}")
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Builds dataclass ``cls`` from ``data``, raising :class:`ConfigError` on unknown keys.

    Args:
        cls: the dataclass type.
        data: a plain dict (from JSON or YAML). Missing keys take the field default.
        where: a prefix naming the location, used in error messages.

    Raises:
        ConfigError: unknown key, missing required key, or a value of the wrong type.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key(s) {unknown}; allowed: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _convert(hints[key], value, f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:  # missing keys, or __post_init__ checks
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(members[0], value, where)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where)  # type: ignore[arg-type]
    if origin is tuple:
        args = get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected a list of {len(args)} items, got {value!r}")
        return tuple(_convert(a, v, where) for a, v in zip(args, value, strict=True))
    if origin is dict:
        key_type, value_type = get_args(hint)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {key_type(k): _convert(value_type, v, where) for k, v in value.items()}
    if origin is typing.Literal:
        if value not in get_args(hint):
            raise ConfigError(f"{where}: {value!r} is not one of {list(get_args(hint))}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads "2e-4" (no dot) as a string; accept it as the number it spells
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    # bool is a subclass of int in Python, but `max_steps: true` is a mistake, not 1
    bad_bool = hint in (int, float) and isinstance(value, bool)
    if hint in (int, float, str, bool) and (bad_bool or not isinstance(value, hint)):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Reads a YAML mapping from ``path``."""
    path = Path(path)
    with path.open() as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``section.key=value`` overrides to a nested dict; values are parsed as YAML.

    Example: ``apply_overrides(cfg, ["train.lr=2e-4", "train.max_steps=10"])``.
    """
    out = yaml.safe_load(yaml.safe_dump(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected dotted.key=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key in dotted path {key!r}")
        for part in parts[:-1]:
            if node.get(part) is None:  # absent, or an empty YAML section (`mel:`)
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def dump_yaml(data: dict[str, Any], path: str | Path) -> None:
    """Writes a plain dict as YAML (used for a run's resolved config)."""
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def load_sections(
    path: str | Path, overrides: list[str], sections: dict[str, type]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads a recipe YAML (one section per dataclass) with dotted overrides, strictly.

    Args:
        path: the YAML file.
        overrides: ``section.key=value`` strings applied before parsing.
        sections: section name -> dataclass; a missing section takes the defaults.

    Returns:
        ``(configs, resolved)``: section -> dataclass instance, and the fully resolved plain
        dict a run writes to its ``config.yaml``.

    Raises:
        ConfigError: an unknown section or key, or a value of the wrong type.
    """
    raw = apply_overrides(load_yaml(path), overrides)
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; allowed: {sorted(sections)}")
    configs: dict[str, Any] = {name: from_dict(cls, raw.get(name) or {}, name) for name, cls in sections.items()}
    return configs, {name: to_dict(config) for name, config in configs.items()}


def recipe_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every ``recipes/<capability>/train.py`` shares.

    ``--run-dir`` is an alias of ``--run``: under ``torchrun``, ``--run`` is rejected as an
    ambiguous abbreviation of torchrun's own ``--run-path``.
    """
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help="recipe YAML")
    parser.add_argument("--run", "--run-dir", dest="run", required=True, type=Path,
                        help="run directory (resumed if it exists); use --run-dir under torchrun")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. loop.max_steps=10")
    return parser


def run_recipe(main: typing.Callable[[], object]) -> None:
    """Runs a recipe script's ``main``; an error of the setup becomes one line on stderr.

    A config that does not parse, a missing file or checkpoint, or a bad value exits with one
    line naming the script and the problem (status 2 for a config error, 1 otherwise), as the
    CLI does. ``VOICEFAKE_DEBUG=1`` shows the traceback instead (a ValueError can also be a
    bug); other exception types always show it.
    """
    from voicefake.checkpoint import CheckpointError

    try:
        main()
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as err:
        if os.environ.get("VOICEFAKE_DEBUG"):
            raise
        script = Path(sys.argv[0]).name
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{script}: error: {message} (VOICEFAKE_DEBUG=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None
