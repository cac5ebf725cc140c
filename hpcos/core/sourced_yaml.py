"""YAML documents that remember where every value came from.

Site specs and cluster profiles are written by hand, so every complaint about them must point at the
file, the line and the field.  PyYAML's composer keeps a mark on every node; we keep those marks in a
side table keyed by the path of the value (``("patches", 0, "reason")``) and translate pydantic's
error locations through it.  Nothing here knows about specs or profiles: both use it.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from hpcos.core.errors import UserError
from hpcos.core.store_files import BadStoreFile, read_bytes_limited
from hpcos.core.text import printable

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
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return _printable(text)


def _printable(text: str) -> str:
    """One line of printable text: control characters (a newline in a key, an escape sequence in a
    value) are shown escaped, so an error is always one line and never drives the terminal."""
    return printable(text)


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
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            # A key that is empty or holds spaces, dots or brackets is shown quoted, so the path stays readable.
            part = str(part)
            if not part or not re.fullmatch(r"[^\s.\[\]'\"]+", part):
                part = repr(part)
            out += f".{part}" if out else part
    return out


def load(path: str | Path, display_root: Path | None = None) -> SourcedDoc:
    """Parse one YAML file; a syntax error becomes an InvalidInput naming the line."""
    path = Path(path)
    shown = (
        path.relative_to(display_root)
        if display_root and path.is_relative_to(display_root)
        else path
    )
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InvalidInput(
                [
                    InputError(
                        str(shown),
                        0,
                        "",
                        f"expected at most {MAX_BYTES} bytes of YAML; found {size}",
                    )
                ]
            )
        # Read as untrusted: a FIFO would block forever and /dev/zero (st_size 0) never ends.
        raw = read_bytes_limited(path, MAX_BYTES, "YAML file", follow=True)
    except OSError as exc:
        raise InvalidInput(
            [InputError(str(shown), 0, "", f"cannot read: {exc.strerror}")]
        ) from None
    except BadStoreFile as exc:
        why = str(exc).removeprefix(f"{path}: ")
        raise InvalidInput([InputError(str(shown), 0, "", f"cannot read: {why}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            [
                InputError(
                    str(shown), line, "", f"expected UTF-8 text; found byte 0x{raw[exc.start]:02x}"
                )
            ]
        ) from None
    return loads(text, shown)


# Hand-written specs and profiles are a few kilobytes.  The budgets stop a file that is large, deeply
# nested or an alias bomb (nine aliases of nine aliases ... expand to billions of values) before it
# costs memory or time; within them, every real file loads.
MAX_BYTES = 1 << 20
MAX_VALUES = 100_000
MAX_DEPTH = 64
# The tags the safe loader gives plain YAML values; any other tag (``!!python/...``, ``!foo``) is refused.
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
}


# libyaml's composer keeps the same marks and is several times faster than the pure-Python one.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def loads(text: str, path: str | Path = "<string>") -> SourcedDoc:
    doc = SourcedDoc(Path(path), None)
    if len(text) > MAX_BYTES:
        raise InvalidInput(
            [InputError(doc.name, 0, "", f"expected at most {MAX_BYTES} bytes of YAML; found more")]
        )
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except RecursionError:
        raise InvalidInput(
            [
                InputError(
                    doc.name, 0, "", f"expected at most {MAX_DEPTH} levels of nesting; found more"
                )
            ]
        ) from None
    except (
        yaml.reader.ReaderError
    ) as exc:  # a character YAML does not allow (NUL, other control characters)
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else 0
        raise InvalidInput(
            [
                InputError(
                    doc.name,
                    line,
                    "",
                    f"YAML syntax error: character {exc.character!r} is not allowed ({exc.reason})",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 0
        problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark and context_mark.line != getattr(mark, "line", None):
            # The mistake is often where the construct began (an unclosed bracket), not where it broke.
            problem += f" ({context} started on line {context_mark.line + 1})"
        raise InvalidInput(
            [InputError(doc.name, line, "", f"YAML syntax error: {problem}")]
        ) from None
    if node is None:
        doc.data = {}
        return doc
    duplicates: list[InputError] = []
    builder = _Builder(
        doc,
        lambda loc, line: duplicates.append(
            InputError(
                doc.name, line, format_loc(loc), f"key given twice (first on line {doc.lines[loc]})"
            )
        ),
    )
    try:
        doc.data = builder.construct(node, (), doc.lines)
    except _Refused as refused:
        raise InvalidInput([refused.error]) from None
    if duplicates:
        raise InvalidInput(duplicates)
    return doc


_scalar_constructor = yaml.SafeLoader("")


class _Refused(Exception):
    def __init__(self, error: InputError):
        self.error = error


class _Builder:
    """Plain data from a composed node graph, within the budgets, with only plain YAML in it."""

    def __init__(self, doc: SourcedDoc, duplicate):
        self.doc, self.duplicate = doc, duplicate
        self.values = 0
        self.open: set[int] = (
            set()
        )  # nodes being built: meeting one again is an alias of its own ancestor

    def refuse(self, node: yaml.Node, loc: Loc, message: str):
        field = format_loc(loc) if len(loc) <= 6 else format_loc(loc[:6]) + "..."
        raise _Refused(InputError(self.doc.name, node.start_mark.line + 1, field, message))

    def construct(self, node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
        lines[loc] = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_VALUES:
            self.refuse(
                node,
                loc,
                f"expected at most {MAX_VALUES} values in one file (aliases count each "
                f"time they are used); found more",
            )
        if len(loc) > MAX_DEPTH:
            self.refuse(node, loc, f"expected at most {MAX_DEPTH} levels of nesting; found more")
        if node.tag not in _PLAIN_TAGS:
            what = (
                "merge keys (<<) are not supported: write the keys out"
                if node.tag == "tag:yaml.org,2002:merge"
                else f"unknown tag {node.tag!r}: only plain YAML values"
            )
            self.refuse(node, loc, f"expected plain YAML; {what}")
        if id(node) in self.open:
            self.refuse(
                node,
                loc,
                "expected plain YAML; found an alias of a value that contains it (recursive)",
            )
        if isinstance(node, yaml.MappingNode):
            self.open.add(id(node))
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.refuse(
                        key_node,
                        loc,
                        "expected a plain key (text or a number); found a "
                        + ("list" if isinstance(key_node, yaml.SequenceNode) else "mapping"),
                    )
                key = self.construct(key_node, loc + (str(key_node.value),), {})
                if key in out:
                    # PyYAML silently keeps the last one; a spec author almost never means that.
                    self.duplicate(loc + (key,), key_node.start_mark.line + 1)
                    continue
                out[key] = self.construct(value_node, loc + (key,), lines)
                lines[loc + (key,)] = key_node.start_mark.line + 1
            self.open.discard(id(node))
            return out
        if isinstance(node, yaml.SequenceNode):
            self.open.add(id(node))
            items = [self.construct(item, loc + (i,), lines) for i, item in enumerate(node.value)]
            self.open.discard(id(node))
            return items
        try:
            return _scalar_constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.refuse(
                node, loc, f"expected a plain YAML value ({getattr(exc, 'problem', None) or exc})"
            )


# Keys that hold secrets.  Specs and profiles live in git and are copied into Jenkins jobs and reports,
# so a secret in them is a leak even before anything reads it.
# A bare "key" is not among them: next to a URL it is usually a misspelt "gpgkey", which is public.
CREDENTIAL_KEY = re.compile(
    r"(?i)^(user(name)?|login|pass(word|wd)?|secret|(api|auth|access)?[_-]?token"
    r"|(api|auth|access|secret|private)[_-]?key|credentials?|auth)$"
)
_URL_USERINFO = re.compile(
    r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]*:[^/@\s]*)@"
)


def strip_credentials(
    model: type[pydantic.BaseModel], doc: SourcedDoc, advice: Callable[[Loc], str]
) -> list[InputError]:
    """Find secrets in ``doc`` and take them out of ``doc.data`` before anything can echo them.

    A credential-looking key is reported unless ``model`` declares it (an ssh login ``user`` is fine),
    and so is a URL with ``user:password@``.  The message names the place and the way to give the
    secret (``advice(loc)``), never the secret itself.
    """
    errors: list[InputError] = []

    def walk(value: Any, loc: Loc) -> Any:
        if isinstance(value, dict):
            known = set(allowed_keys(model, loc))
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and CREDENTIAL_KEY.match(key) and key not in known:
                    errors.append(
                        doc.error(
                            loc + (key,),
                            f"credentials do not belong in {doc.name}; {advice(loc + (key,))}",
                        )
                    )
                    continue
                out[key] = walk(item, loc + (key,))
            return out
        if isinstance(value, list):
            return [walk(item, loc + (i,)) for i, item in enumerate(value)]
        if isinstance(value, str) and (match := _URL_USERINFO.match(value)):
            errors.append(doc.error(loc, f"URL contains a user name and password; {advice(loc)}"))
            return match["scheme"] + value[match.end() :]
        return value

    doc.data = walk(doc.data, ())
    return errors


def validate(
    model: type[pydantic.BaseModel], doc: SourcedDoc, context: Mapping[str, Any] | None = None
):
    """Validate ``doc`` against ``model``; every pydantic error becomes an InputError with file:line."""
    try:
        return model.model_validate(doc.data, context=dict(context or {}))
    except pydantic.ValidationError as exc:
        raise InvalidInput(explain(model, doc, exc.errors(include_url=False))) from None


# Readable names for the patterns of constrained strings (see ``DescribedPattern``).
_PATTERN_MEANINGS: dict[str, str] = {}


@dataclass(frozen=True)
class DescribedPattern(pydantic.StringConstraints):
    """``Annotated[str, DescribedPattern(pattern=REGEX, meaning=...)]``: a string matching ``REGEX``
    whose error says ``expected <meaning>`` instead of quoting the regex."""

    meaning: str = ""

    def __post_init__(self) -> None:
        if self.pattern is not None:
            _PATTERN_MEANINGS[str(self.pattern)] = self.meaning


def explain(
    model: type[pydantic.BaseModel], doc: SourcedDoc, errors: Iterable[Mapping[str, Any]]
) -> list[InputError]:
    """pydantic errors -> one InputError per thing wrong.

    The models this reads have no unions (but Optional): pydantic's error locations are then the
    file's own keys and indexes (``tests/test_specs_sourced_yaml.py`` keeps it so).
    """
    errors = list(errors)
    # "unknown key 'ownr'; did you mean 'owner'?" already says what "owner: required field is missing" would.
    meant = {
        tuple(err["loc"][:-1]) + (hint,)
        for err in errors
        if err["type"] == "extra_forbidden"
        for hint in [_closest_key(model, tuple(err["loc"]))]
        if hint
    }
    return [
        _explain_one(model, doc, err)
        for err in errors
        if not (err["type"] == "missing" and tuple(err["loc"]) in meant)
    ]


def _closest_key(model: type[pydantic.BaseModel], loc: Loc) -> str | None:
    hint = difflib.get_close_matches(str(loc[-1]), allowed_keys(model, loc[:-1]), n=1)
    return hint[0] if hint else None


def _explain_one(
    model: type[pydantic.BaseModel], doc: SourcedDoc, err: Mapping[str, Any]
) -> InputError:
    loc = tuple(err["loc"])
    if (
        loc and loc[-1] == "[key]"
    ):  # pydantic's marker for a mapping key that failed: the key is the field
        loc = loc[:-1]
    kind = err["type"]
    found = err.get("input")
    if kind == "extra_forbidden":
        hint = _closest_key(model, tuple(err["loc"]))
        known = ", ".join(sorted(allowed_keys(model, tuple(err["loc"])[:-1])))
        return doc.error(
            loc,
            f"unknown key {loc[-1]!r}; "
            + (f"did you mean {hint!r}?" if hint else f"expected one of: {known}"),
        )
    if kind == "missing":
        return doc.error(loc, "required field is missing")
    if kind in ("value_error", "assertion_error"):
        message = _validator_message(err["msg"])
        # A validator that says what it found (without echoing a whole mapping) is taken at its word.
        return doc.error(
            loc, message if "; found " in message else f"{message}; found {_show(found)}"
        )
    hint = _did_you_mean(found, err["ctx"]["expected"]) if kind == "literal_error" else ""
    return doc.error(loc, f"expected {_expected(err)}; found {_show(found)}{hint}")


def _expected(err: Mapping[str, Any]) -> str:
    """What pydantic wanted, as a phrase that fits after "expected"."""
    kind, ctx, msg = err["type"], err.get("ctx") or {}, err["msg"]
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "a mapping (key: value)"
    if kind in ("bool_type", "bool_parsing"):
        return "true or false"
    if kind == "literal_error":
        return f"one of {ctx['expected'].replace(' or ', ', ')}"
    if kind == "string_pattern_mismatch":
        return _PATTERN_MEANINGS.get(ctx["pattern"], f"text matching {ctx['pattern']}")
    if kind in ("too_short", "too_long"):
        word = "at least" if kind == "too_short" else "at most"
        count = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        return f"{word} {count} item{'s' if count != 1 else ''}"
    if kind in ("string_too_short", "string_too_long"):
        word = "at least" if kind == "string_too_short" else "at most"
        count = ctx["min_length"] if kind == "string_too_short" else ctx["max_length"]
        return f"{word} {count} character{'s' if count != 1 else ''}"
    if kind in ("value_error", "assertion_error"):
        return _validator_message(msg)
    # "Input should be a valid integer, unable to parse string as an integer" -> "a valid integer"
    text = msg.removeprefix("Input should be ").split(", unable")[0]
    return text[0].lower() + text[1:] if text else text


def _validator_message(msg: str) -> str:
    # Our validators word their messages as "expected ..."; pydantic prefixes them.
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _did_you_mean(found: Any, expected: str) -> str:
    if not isinstance(found, str):
        return ""
    choices = re.findall(r"'([^']*)'", expected)
    hint = difflib.get_close_matches(found, choices, n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def allowed_keys(model: type[pydantic.BaseModel], loc: Loc) -> list[str]:
    """Field names (by alias) of the model found at ``loc`` inside ``model``; none where no model is."""
    annotation: Any = model
    for part in loc:
        annotation = _child(_unwrap(annotation), part)
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return list(_fields_by_name(annotation))
    return []


def _child(current: Any, part: str | int) -> Any:
    if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
        info = _fields_by_name(current).get(str(part))
        return info.annotation if info else None
    args = typing.get_args(current)
    origin = typing.get_origin(current)
    if origin in (dict, Mapping) and args:
        return args[1]
    if origin in (list, tuple, Sequence) and args:
        return args[0]
    return None


def _fields_by_name(model: type[pydantic.BaseModel]) -> dict[str, pydantic.fields.FieldInfo]:
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _unwrap(annotation: Any) -> Any:
    """Strip Optional and Annotated so the walk reaches the model inside."""
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
