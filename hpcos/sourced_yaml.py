"""YAML documents that remember where every value came from.

Site specs and cluster profiles are written by hand, so every complaint about them must point at the
file, the line and the field.  PyYAML's composer keeps a mark on every node; we keep those marks in a
side table keyed by the path of the value (``("patches", 0, "reason")``) and translate pydantic's
error locations through it.  Nothing here knows about specs or profiles: both use it.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from hpcos.errors import UserError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class InputError:
    """One thing wrong with one value of one file."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class InvalidInput(UserError):
    """Raised with every error found, so a user fixes them all in one pass."""

    def __init__(self, errors: Iterable[InputError]):
        self.errors = sorted(errors, key=lambda e: (e.file, e.line, e.field))
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass
class SourcedDoc:
    """Plain Python data of one YAML file plus the line of every key and item in it."""

    path: Path
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.path)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """Line of the value at ``loc``, or of its nearest enclosing value that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def error(self, loc: Sequence[str | int], message: str) -> InputError:
        return InputError(self.name, self.line_of(loc), format_loc(loc), message)


def format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load(path: str | Path, display_root: Path | None = None) -> SourcedDoc:
    """Parse one YAML file; a syntax error becomes an InvalidInput naming the line."""
    path = Path(path)
    shown = path.relative_to(display_root) if display_root and path.is_relative_to(display_root) else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput([InputError(str(shown), 0, "", f"cannot read: {exc.strerror}")]) from None
    return loads(text, shown)


def loads(text: str, path: str | Path = "<string>") -> SourcedDoc:
    doc = SourcedDoc(Path(path), None)
    try:
        node = yaml.compose(text, Loader=_Composer)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput([InputError(doc.name, line, "", f"YAML syntax error: {problem}")]) from None
    if node is None:
        doc.data = {}
        return doc
    try:
        doc.data = _construct(node, (), doc.lines)
    except _Duplicate as dup:
        raise InvalidInput([InputError(doc.name, dup.line, format_loc(dup.loc), "key given twice")]) from None
    return doc


# libyaml's composer keeps the same marks and is several times faster (a site has many package files).
_Composer = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Duplicate(Exception):
    def __init__(self, loc: Loc, line: int):
        self.loc, self.line = loc, line


_scalar_constructor = yaml.SafeLoader("")


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _construct(key_node, loc + ("<key>",), {})
            if key in out:
                # PyYAML silently keeps the last one; a spec author almost never means that.
                raise _Duplicate(loc + (key,), key_node.start_mark.line + 1)
            out[key] = _construct(value_node, loc + (key,), lines)
            lines[loc + (key,)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, loc + (i,), lines) for i, item in enumerate(node.value)]
    return _scalar_constructor.construct_object(node, deep=True)


def validate(model: type[pydantic.BaseModel], doc: SourcedDoc, context: Mapping[str, Any] | None = None):
    """Validate ``doc`` against ``model``; every pydantic error becomes an InputError with file:line."""
    try:
        return model.model_validate(doc.data, context=dict(context or {}))
    except pydantic.ValidationError as exc:
        raise InvalidInput(_explain(model, doc, err) for err in exc.errors(include_url=False)) from None


def _explain(model: type[pydantic.BaseModel], doc: SourcedDoc, err: Mapping[str, Any]) -> InputError:
    loc: Loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and _is_union_tag(p)))
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        known = allowed_keys(model, loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), known, n=1)
        msg = f"unknown key {loc[-1]!r}"
        msg += f"; did you mean {hint[0]!r}?" if hint else f"; expected one of: {', '.join(sorted(known))}"
        return doc.error(loc, msg)
    if kind == "missing":
        return doc.error(loc, "required field is missing")
    expected = err["msg"]
    if expected.startswith("Value error, "):
        expected = expected[len("Value error, "):]
    elif expected.startswith("Assertion failed, "):
        expected = expected[len("Assertion failed, "):]
    else:
        expected = "expected " + expected[0].lower() + expected[1:]
    return doc.error(loc, f"{expected}; found {_show(found)}")


def _is_union_tag(part: str) -> bool:
    # pydantic inserts the member type into union error locations ("function-after[...]", "str", ...)
    return "[" in part or part in {"str", "int", "float", "bool", "list", "dict"}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def allowed_keys(model: type[pydantic.BaseModel], loc: Loc) -> list[str]:
    """Field names (by alias) of the model found at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            info = _fields_by_name(current).get(str(part))
            current = info.annotation if info else None
        else:
            args = typing.get_args(current)
            origin = typing.get_origin(current)
            if origin in (dict, Mapping) and args:
                current = args[1]
            elif origin in (list, tuple, Sequence) and args:
                current = args[0]
            else:
                return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        return list(_fields_by_name(current))
    return []


def _fields_by_name(model: type[pydantic.BaseModel]) -> dict[str, pydantic.fields.FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _unwrap(annotation: Any) -> Any:
    """Strip Optional/Annotated so the walk reaches the model inside."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
