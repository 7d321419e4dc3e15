"""Settings from YAML files and the command line, converted to their field's type: ``"1e-3"``
(which YAML 1.1 reads as a string) to ``0.001``, ``"--k auto"`` to ``"auto"``, ``KEY=VALUE``
items to mappings. Errors name the setting and say what it takes. Pure: no torch, no
Lightning."""

from __future__ import annotations

import types
import typing
from typing import Any

import numpy as np

__all__ = ["coerce", "yaml_scalar"]


def yaml_scalar(value: Any) -> Any:
    """A factory argument from the command line (``"3"``, ``"0.1"``, ``"true"``) as YAML reads
    it; other values unchanged."""
    if isinstance(value, str):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


_NONE_WORDS = ("none", "None", "null", "NULL", "~")


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the field's type ``hint``; strings from the command line or YAML (such as
    ``"1e-3"``, which YAML 1.1 reads as a string) are converted. Raises a ValueError naming
    the setting."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or value in _NONE_WORDS):
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and typing.get_origin(members[0]) is dict:
            return coerce(name, value, members[0])  # its own message says what to write
        if (isinstance(value, list) and len(value) == 1 and isinstance(value[0], str)
                and str in members and not value[0].strip().lstrip("-").isdigit()):
            value = value[0]  # "--k auto" from the command line arrives as ["auto"]
        if isinstance(value, str):  # "5" is the int 5 in int | str; "auto" stays a string
            members.sort(key=lambda a: a is str)
        else:  # the value's own type first: 3 stays an int in int | float
            for member in members:
                if _is_instance(value, member):
                    return coerce(name, value, member)
        for member in members:
            try:
                return coerce(name, value, member)
            except ValueError:
                continue
        raise ValueError(f"`{name}` must be {_type_name(hint)}, got {value!r}.")
    if origin is list:
        items = value if isinstance(value, list | tuple) else [value]
        return [coerce(name, v, args[0]) for v in items]
    if origin is dict:
        return _mapping(name, value, many=typing.get_origin(args[1]) is list)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif hint is int:
        if isinstance(value, int | np.integer) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif hint is float:
        if isinstance(value, int | float | np.number) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - every field has one of the types above
        return value
    raise ValueError(f"`{name}` must be {_type_name(hint)}, got {value!r}.")


def _mapping(name: str, value: Any, many: bool) -> dict[str, Any]:
    """A mapping setting from YAML (a mapping) or the command line (``KEY=VALUE`` items; with
    ``many``, ``KEY=V1,V2,...`` for a list of values, each read as YAML reads it)."""
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    items = value if isinstance(value, list | tuple) else [value]
    out: dict[str, Any] = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ValueError(f"`{name}` takes KEY=VALUE{',VALUE...' if many else ''} items, got "
                             f"{item!r}.")
        key, text = item.split("=", 1)
        if many:
            out[key.strip()] = [yaml_scalar(v.strip()) for v in text.split(",") if v.strip()]
        else:
            out[key.strip()] = yaml_scalar(text.strip())
    return out


def _is_instance(value: Any, hint: Any) -> bool:
    if typing.get_origin(hint) is list:
        return isinstance(value, list | tuple)
    if typing.get_origin(hint) is dict:
        return isinstance(value, dict)
    if hint in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list:
        return f"a list of {_type_name(args[0])}"
    if typing.get_origin(hint) is dict:
        return "a mapping (KEY=VALUE items)"
    if args:
        return " or ".join("None" if a is type(None) else _type_name(a) for a in args)
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint))
