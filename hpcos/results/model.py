"""The results of one harness run: what the nightly job writes and what tickets and baselines read.

One ``TestResult`` per (test, node) -- Jenkins shows which node failed, tickets group nodes by
fingerprint, baselines key on node class.  The JSON file is the contract between the harness and
everything downstream of it (``hpcos tickets file``, ``hpcos perf``, ``hpcos report``); bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.core.budgets import RESULTS_FILE_BUDGET, node_set_problem
from hpcos.core.files import write_text_atomically
from hpcos.core.sourced_yaml import InputError, InvalidInput, format_loc
from hpcos.core.store_files import BadStoreFile, read_bytes_limited

SCHEMA_VERSION = 1

Outcome = Literal["passed", "failed", "error", "skipped"]
# The failure classes tickets group by.
FailureClass = Literal["error", "timeout", "performance regression", "node unreachable"]
Direction = Literal["lower", "higher"]
# Bytes of one message: SQLite's integers are 64-bit (2**64 ended `hpcos perf record` in an OverflowError).
MessageSize = Annotated[int, pydantic.Field(ge=0, le=2**62)]


@dataclass
class Reference:
    """ReFrame-style performance reference: ``value`` with relative bounds (``-0.1`` = 10% below)."""

    value: float
    lower: float | None
    upper: float | None
    unit: str

    def bounds(self) -> tuple[float | None, float | None]:
        lo = self.value * (1 + self.lower) if self.lower is not None else None
        hi = self.value * (1 + self.upper) if self.upper is not None else None
        return lo, hi

    def admits(self, measured: float) -> bool:
        lo, hi = self.bounds()
        return (lo is None or measured >= lo) and (hi is None or measured <= hi)


@dataclass
class Measurement:
    metric: str  # "latency", "bandwidth", "allreduce_latency", ...
    value: float  # the figure compared (median of samples after warm-up)
    unit: str
    direction: Direction  # which way is better
    size: MessageSize | None = None  # message size in bytes, where it applies
    samples: list[float] = field(default_factory=list)  # every repetition, warm-up already dropped
    reference: Reference | None = None


@dataclass
class TestResult:
    __test__ = False  # a result record, not a pytest test class

    test_id: str  # pytest node id without the node parameter
    node: str | None  # one node, a node set (job-level tests), or None for node-less tests
    outcome: Outcome
    duration: float = 0.0
    failure_class: FailureClass | None = None
    message: str = ""  # the failure text as reported, tool output included
    command: str = ""  # the command that ran on the node
    rerun: str = ""  # the hpcos command that reruns just this (test, node)
    mpi: str | None = None
    measurements: list[Measurement] = field(default_factory=list)
    # An MPI job's MPI/UCX/OFI/PSM/LD_* variables (secrets masked): those it inherited from the night's
    # environment (what a reproduction must set again) and those the profile's stack or the test set.
    env: dict[str, str] = field(default_factory=dict)
    profile_env: dict[str, str] = field(default_factory=dict)
    # pytest's full node id, every parameter included (node, MPI stack): what the specs' `tests:`
    # expressions select, as `hpcos specs check` selects them in the collected suite.
    nodeid: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class RunResults:
    run_id: str
    cluster: str  # profile name
    started: str  # ISO 8601, UTC
    finished: str = ""
    # Versions under test: kernel, ofed, openmpi, mpich, ... as found in the testing repos / on nodes.
    versions: dict[str, str] = field(default_factory=dict)
    testing_snapshot: str | None = None
    build_url: str | None = None  # $BUILD_URL when Jenkins runs it
    # sha256 of the profile file the run used: the production gate counts only runs on the site's profile.
    profile_sha256: str | None = None
    results: list[TestResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def failures(self) -> list[TestResult]:
        return [r for r in self.results if r.failed]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, path: str | Path, mask: list[str] | None = None) -> None:
        """Write the file; every string in it with each of ``mask`` (secrets) replaced by ********."""
        data = asdict(self)
        if mask:
            data = _masked(data, sorted((s for s in mask if s), key=len, reverse=True))
        write_text_atomically(Path(path), json.dumps(data, indent=2, sort_keys=True))

    @classmethod
    def from_dict(cls, data: Any, source: str = "results") -> RunResults:
        """``data`` checked against the results schema (these dataclasses); InvalidInput names the field."""
        if not isinstance(data, dict):
            raise InvalidInput(
                [
                    InputError(
                        source,
                        0,
                        "",
                        f"not an hpcos results file: expected a JSON object; found "
                        f"{type(data).__name__}",
                    )
                ]
            )
        if data.get("schema_version") != SCHEMA_VERSION:
            raise InvalidInput(
                [
                    InputError(
                        source,
                        0,
                        "",
                        f"not an hpcos results file: schema_version expected "
                        f"{SCHEMA_VERSION}; found {data.get('schema_version')!r}",
                    )
                ]
            )
        try:
            run = _SCHEMA.validate_python(data)
        except pydantic.ValidationError as exc:
            raise InvalidInput(
                [
                    InputError(source, 0, format_loc(err["loc"]), _message(err))
                    for err in exc.errors(include_url=False)
                ]
            ) from None
        if errors := _node_errors(run, source):
            raise InvalidInput(errors)
        return run

    @classmethod
    def read(cls, path: str | Path) -> RunResults:
        """Read and validate a results file; every problem (unreadable, not JSON, not the schema) is an
        InvalidInput naming the file and the field, so no reader ever works on a half-valid run."""
        path = Path(path)
        try:
            # Not a FIFO or /dev/zero, not through a budget: a results file is a regular file of MiBs.
            text = read_bytes_limited(path, RESULTS_FILE_BUDGET, "results file", follow=True)
        except BadStoreFile as exc:
            raise InvalidInput(
                [InputError(str(path), 0, "", str(exc).removeprefix(f"{path}: "))]
            ) from None
        except FileNotFoundError:
            raise InvalidInput([InputError(str(path), 0, "", "results file not found")]) from None
        except OSError as exc:
            raise InvalidInput(
                [InputError(str(path), 0, "", f"cannot read: {exc.strerror}")]
            ) from None
        try:
            data = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise InvalidInput(
                [InputError(str(path), 0, "", f"not an hpcos results file: not JSON ({why})")]
            ) from None
        return cls.from_dict(data, str(path))


def _node_errors(run: RunResults, source: str) -> list[InputError]:
    """Every result's ``node`` that is not a ClusterShell node set within the budget: tickets, the
    gate and reports expand them (a name with a stray bracket must not end in a traceback there)."""
    errors, checked = [], {}
    for i, result in enumerate(run.results):
        if not result.node:
            continue
        if result.node not in checked:
            found = repr(result.node)
            found = found if len(found) <= 60 else found[:57] + "..."
            why = node_set_problem(result.node)
            if why is None:
                try:
                    NodeSet(result.node)
                except NodeSetParseError:
                    why = f"expected a node name or ClusterShell node set; found {found}"
            checked[result.node] = why
        if (why := checked[result.node]) is not None:
            errors.append(InputError(source, 0, f"results.{i}.node", why))
    return errors


def _masked(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        return {_masked(k, secrets): _masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, secrets) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "********")
        return value
    return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a results file may hold")


def _message(err: dict) -> str:
    if err["type"] in ("missing", "missing_argument"):
        return "required field is missing"
    if err["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return "unknown key"
    found = repr(err.get("input"))
    found = found if len(found) <= 60 else found[:57] + "..."
    text = err["msg"].removeprefix("Input should be ").split(", unable")[0]
    return f"expected {text[0].lower() + text[1:]}; found {found}"


# The dataclasses above are the schema: pydantic checks every field's type, the outcome and failure
# class against their Literals, refuses unknown keys, NaN and infinity, and builds the nested objects.
for _cls in (Reference, Measurement, TestResult, RunResults):
    _cls.__pydantic_config__ = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)
_SCHEMA = pydantic.TypeAdapter(RunResults)
