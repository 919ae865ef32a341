"""Strict reading of config-like documents: instruments files and ``liqmon evaluate`` input.

A typo must not fall back to a default (``"collaterel"`` would give an account with no
collateral), so the Structs of such input forbid unknown fields, and every problem is
one line naming the path of the field: ``$.accounts[0].collaterel: unknown field;
expected one of account, collateral, mode, positions``. Keys that start with ``_``
are comments (``"_source": "..."``) and are dropped before decoding, at any depth.

Wire messages (``prices``, ``fills``) are not read here: they stay tolerant of fields
they do not know, so producers can add fields before every consumer is upgraded.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from monitor.errors import InputError

__all__ = ["COMMENT_PREFIX", "allow_comment_keys", "convert_strict", "strip_comments"]

T = TypeVar("T")

#: Keys starting with this are comments in config-like documents.
COMMENT_PREFIX = "_"

_AT = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def strip_comments(value: Any) -> Any:
    """``value`` with every object key starting with ``_`` removed, at any depth."""
    if isinstance(value, dict):
        return {
            key: strip_comments(item)
            for key, item in value.items()
            if not (isinstance(key, str) and key.startswith(COMMENT_PREFIX))
        }
    if isinstance(value, list):
        return [strip_comments(item) for item in value]
    return value


def convert_strict(raw: Any, target: type[T] | Any) -> T:
    """``raw`` (parsed JSON or TOML) as ``target``, comments dropped.

    Raises InputError with one line ``<path>: <problem>`` (e.g. ``$.instruments[0].kind:
    invalid enum value 'inverse'``); an unknown field lists the fields expected there.
    """
    data = strip_comments(raw)
    try:
        result: T = msgspec.convert(data, target)
    except msgspec.ValidationError as exc:
        raise InputError(describe(str(exc), target, data)) from None
    return result


def describe(message: str, target: Any, data: Any) -> str:
    """msgspec's ``Problem - at `$.path``` as ``$.path: problem`` (unknown fields named)."""
    match = _AT.match(message)
    text, path = (match["text"], match["path"] or "") if match else (message, "")
    unknown = _UNKNOWN.match(text)
    if unknown:
        known = _fields_at(target, data, path)
        expected = f"; expected one of {', '.join(known)}" if known else ""
        return f"${path}.{unknown['name']}: unknown field{expected}"
    return f"${path}: {text[:1].lower()}{text[1:]}"


def _fields_at(target: Any, data: Any, path: str) -> list[str]:
    """The field names of the Struct at ``path`` in ``data`` (empty if not found)."""
    info: Any = msgspec.inspect.type_info(target)
    value = data
    for key, index in _STEP.findall(path):
        info = _resolve(info, value)
        if key:
            if isinstance(info, msgspec.inspect.StructType):
                fields = {f.encode_name: f.type for f in info.fields}
                info = fields.get(key)
            elif isinstance(info, msgspec.inspect.DictType):
                info = info.value_type
            else:
                return []
            value = value.get(key) if isinstance(value, dict) else None
        else:
            if not isinstance(
                info, msgspec.inspect.ListType | msgspec.inspect.VarTupleType
            ) or not isinstance(value, list):
                return []
            info, value = info.item_type, value[int(index)]
    info = _resolve(info, value)
    if not isinstance(info, msgspec.inspect.StructType):
        return []
    names = [f.encode_name for f in info.fields]
    if info.tag_field is not None:
        names.append(info.tag_field)
    return sorted(names)


def _resolve(info: Any, value: Any) -> Any:
    """The member of a union that ``value`` decodes as (tagged Structs by their tag)."""
    if not isinstance(info, msgspec.inspect.UnionType):
        return info
    for member in info.types:
        if (
            isinstance(member, msgspec.inspect.StructType)
            and member.tag_field is not None
            and isinstance(value, dict)
            and value.get(member.tag_field) == member.tag
        ):
            return member
    for member in info.types:
        if not isinstance(member, msgspec.inspect.NoneType):
            return member
    return info


def allow_comment_keys(schema: Any) -> Any:
    """A JSON Schema that also admits ``_``-prefixed comment keys on every object."""
    if isinstance(schema, dict):
        result = {key: allow_comment_keys(value) for key, value in schema.items()}
        if result.get("type") == "object":
            result["patternProperties"] = {f"^{COMMENT_PREFIX}": {}}
        return result
    if isinstance(schema, list):
        return [allow_comment_keys(item) for item in schema]
    return schema
