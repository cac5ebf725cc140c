"""Why a build failed, read from its logs: what a packager needs first, without opening the log.

The same reader serves both builders: ``rpmbuild`` output (our ``build.log``) and mock's result
directory (``build.log`` holds rpmbuild's output, ``root.log`` the chroot's package manager output,
``state.log`` the phases).  Pure functions over text; the caller reads the files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum


class FailureKind(StrEnum):
    PATCH = "patch-does-not-apply"
    BUILD_REQUIRES = "missing-buildrequires"
    COMPILE = "compile-failure"
    CHECK = "test-failure"
    INSTALL = "install-failure"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Failure:
    kind: FailureKind
    summary: str
    # The lines a packager reads first: compiler errors, failing tests, missing packages, rejected hunks.
    details: list[str] = field(default_factory=list)
    patch: str | None = None
    file: str | None = None
    hunks: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # A patch that applies in reverse: upstream already has the change (patch_check.py).
    reversed: bool = False
    # The rpm section that failed (%prep, %build, ...), where known.
    section: str | None = None


FIRST_LINES = 10

_BAD_EXIT = re.compile(r"Bad exit status from \S+ \((%\w+)\)")
# rpmbuild's own dependency check: "error: Failed build dependencies:" then "\tNAME is needed by NVR".
_NEEDED_BY = re.compile(r"^\s+(.+?) is needed by \S+")
# dnf inside mock (root.log): "No matching package to install: 'NAME'"; dnf5 and yum say it differently.
_NO_MATCH = [
    re.compile(r"No matching package to install: '([^']+)'"),
    re.compile(r"No match for argument: (\S+)"),
    re.compile(r"Failed to resolve the transaction:.*?No match for argument: (\S+)"),
    re.compile(r"Error: No Package found for (\S+)"),
]
# Which patch rpm was applying: "Patch #1 (name.patch):" for %patch/%setup, or the file that
# %autosetup/%autopatch pipes into patch(1) ("rpmuncompress .../name.patch", "cat .../name.patch").
_PATCH_HEADER = re.compile(r"^(?:Patch #\d+ \((.+)\):|\+ Apply(?:Optional)?Patch (\S+).*)$")
_PATCH_PIPE = re.compile(
    r"^\+ \S*(?:rpmuncompress|cat|gzip -dc|xz -dc|bzip2 -dc) .*?/([^/\s]+\.(?:patch|diff)\S*)"
)
_PATCHING_FILE = re.compile(r"^patching file (.+)$")
_HUNK_FAILED = re.compile(r"^(Hunk #\d+ FAILED at \d+.*)$")
_HUNKS_SUMMARY = re.compile(r"^(\d+ out of \d+ hunks? FAILED) -- saving rejects to file (.+)\.rej$")
_CANT_FIND = re.compile(r"^can't find file to patch at input line \d+")
_PATCH_TARGET = re.compile(r"^\|?(?:---|\+\+\+) (?:a/|b/)?(\S+)")
# A compiler or build tool error, in the order people read them.
_ERROR_LINE = re.compile(
    r"(: (?:fatal )?error: |^make(?:\[\d+\])?: \*\*\* |undefined reference to |^ld: |"
    r"^CMake Error|^configure: error: |^Error: |^error: (?!Bad exit status))"
)
_TEST_LINE = re.compile(
    r"(^FAIL\b|\bFAILED\b|^not ok\b|^ERROR\b|^# FAIL: *[1-9]|Error \d+$|: error: |"
    r"^make(?:\[\d+\])?: \*\*\* |Assertion .* failed|^Test .*\*\*\*Failed)"
)
# state.log: "2026-11-26 10:00:01,234 - Start: build setup for x.src.rpm" (bootstrap phases say "Start(bootstrap)").
_STATE = re.compile(r" - (Start|Finish)(?:\(bootstrap\))?: (.+)$")
_COMPILER_CONTEXT = re.compile(r"^\s+\d*\s\|")
_MOCK_BUILDER_NOISE = re.compile(r"^(?:DEBUG|INFO|WARNING|ERROR) [\w.]+:\d+: {1,2}")


def classify(build_log: str, root_log: str = "", state_log: str = "") -> Failure:
    """Classify a failed build from rpmbuild's output and, for mock, the chroot set-up log and the
    phase log (which names the phase mock was in when nothing else explains the failure)."""
    lines = [_strip_mock_prefix(line) for line in build_log.splitlines()]
    root_lines = [_strip_mock_prefix(line) for line in root_log.splitlines()]

    missing = _missing_build_requires(lines) or _missing_build_requires(root_lines)
    if missing:
        return Failure(
            FailureKind.BUILD_REQUIRES,
            f"missing BuildRequires: {', '.join(missing)}",
            details=[f"{name} is not available" for name in missing],
            missing=missing,
        )

    section, section_lines = _failed_section(lines)
    if section == "%prep":
        patch_failure = _patch_failure(section_lines)
        if patch_failure:
            return patch_failure
    if section == "%build":
        errors = _first(section_lines, _ERROR_LINE, context=True)
        return Failure(
            FailureKind.COMPILE, f"compile failure in %build: {_head(errors)}", details=errors
        )
    if section == "%check":
        errors = _first(section_lines, _TEST_LINE) or _first(section_lines, _ERROR_LINE)
        return Failure(
            FailureKind.CHECK, f"test failure in %check: {_head(errors)}", details=errors
        )
    if section == "%install":
        errors = _first(section_lines, _ERROR_LINE)
        return Failure(FailureKind.INSTALL, f"failure in %install: {_head(errors)}", details=errors)
    errors = _first(lines, _ERROR_LINE) or _first(root_lines, _ERROR_LINE) or lines[-FIRST_LINES:]
    phase = unfinished_phase(state_log)
    where = f" in {section}" if section else (f" during mock's {phase!r}" if phase else "")
    return Failure(
        FailureKind.UNKNOWN,
        f"build failed{where}: {_head(errors)}",
        details=errors,
        section=section,
    )


def unfinished_phase(state_log: str) -> str | None:
    """The innermost phase of mock's state.log that started and never finished."""
    open_phases: list[str] = []
    for line in state_log.splitlines():
        match = _STATE.search(line)
        if not match:
            continue
        kind, phase = match.groups()
        if kind == "Start":
            open_phases.append(phase)
        elif phase in open_phases:
            open_phases.remove(phase)
    return open_phases[-1] if open_phases else None


def _strip_mock_prefix(line: str) -> str:
    # Older mock logs (and root.log) prefix every line with "DEBUG util.py:446:  ".
    return _MOCK_BUILDER_NOISE.sub("", line.rstrip("\n"))


def _missing_build_requires(lines: list[str]) -> list[str]:
    missing: list[str] = []
    in_failed_deps = False
    for line in lines:
        if "Failed build dependencies:" in line:
            in_failed_deps = True
            continue
        if in_failed_deps:
            match = _NEEDED_BY.match(line)
            if match:
                missing.append(match.group(1))
                continue
            in_failed_deps = False
        for pattern in _NO_MATCH:
            match = pattern.search(line)
            if match:
                missing.append(match.group(1).strip("'\""))
    return list(dict.fromkeys(missing))


def _failed_section(lines: list[str]) -> tuple[str | None, list[str]]:
    """The rpm scriptlet section that exited non-zero, and its output lines."""
    failed = None
    for line in lines:
        match = _BAD_EXIT.search(line)
        if match:
            failed = match.group(1)
            break
    if failed is None:
        return None, lines
    start = 0
    end = len(lines)
    for i, line in enumerate(lines):
        if line.startswith(f"Executing({failed})"):
            start = i
        elif _BAD_EXIT.search(line):
            end = i
            break
    return failed, lines[start:end]


def _patch_failure(lines: list[str]) -> Failure | None:
    patch = file = None
    hunks: list[str] = []
    details: list[str] = []
    # patch(1) prints "can't find file to patch" first and the diff header it could not place after it.
    awaiting_target = False
    for line in lines:
        header = _PATCH_HEADER.match(line) or _PATCH_PIPE.match(line)
        if header:
            patch, file, hunks, details = next(g for g in header.groups() if g), None, [], []
            continue
        target = _PATCH_TARGET.match(line)
        if target and awaiting_target:
            file, awaiting_target = target.group(1), False
            continue
        match = _PATCHING_FILE.match(line)
        if match:
            file = match.group(1).strip("'")
            continue
        match = _HUNK_FAILED.match(line)
        if match:
            hunks.append(match.group(1))
            details.append(line)
            continue
        match = _HUNKS_SUMMARY.match(line)
        if match:
            file = file or match.group(2)
            if not hunks:
                hunks.append(match.group(1))
            details.append(line)
            continue
        if _CANT_FIND.match(line):
            awaiting_target = file is None
            hunks.append("file to patch not found")
            details.append(line)
    if not hunks:
        return None
    where = f" to {file}" if file else ""
    return Failure(
        FailureKind.PATCH,
        f"patch {patch or '(unknown)'} does not apply{where}: {'; '.join(hunks)}",
        details=details,
        patch=patch,
        file=file,
        hunks=hunks,
    )


def _first(lines: list[str], pattern: re.Pattern, context: bool = False) -> list[str]:
    """The first matching lines (not the shell's "+ " trace of them); with ``context``, the source line
    and caret gcc and clang print under an error come along."""
    found: list[str] = []
    following = False
    for line in lines:
        if pattern.search(line) and not line.startswith("+ "):
            found.append(line)
            following = context
        elif following and _COMPILER_CONTEXT.match(line):
            found.append(line)
        else:
            following = False
        if len(found) >= FIRST_LINES:
            break
    return found


def _head(errors: list[str]) -> str:
    return errors[0].strip() if errors else "no error line found; see build.log"
