"""What a package change means to people: its newest changelog entries (the repository's ``other``
metadata) and the advisories that name it (the mirror's ``updateinfo``, carried over from upstream).

Both are read from metadata with a streaming parser, never from the RPMs, so a plan over a
20,000-package snapshot diff opens no package.
"""

from __future__ import annotations

import lzma
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import rpm

from hpcos.repo.repodata import RepodataError, locations, open_compressed

OTHER_NS = "{http://linux.duke.edu/metadata/other}"


@dataclass(frozen=True)
class ChangelogEntry:
    date: str  # YYYY-MM-DD
    author: str  # "Name <mail> - version-release", as rpm writes it
    text: str


@dataclass(frozen=True)
class Advisory:
    id: str  # RHSA-2024:1234, RLSA-..., FEDORA-...
    kind: str  # security, bugfix, enhancement
    severity: str
    title: str
    issued: str
    references: tuple[str, ...] = ()  # CVE ids (and other reference ids)


@dataclass
class Errata:
    changelogs: dict[str, list[ChangelogEntry]] = field(
        default_factory=dict
    )  # "name.arch" -> newest first
    advisories: dict[str, list[Advisory]] = field(default_factory=dict)  # "name.arch" -> advisories


def _metadata(repo_dir: Path, kind: str) -> Path | None:
    return locations(repo_dir).get(kind)


def changelogs(
    repo_dir: Path, wanted: dict[str, str], limit: int = 3
) -> dict[str, list[ChangelogEntry]]:
    """The newest ``limit`` changelog entries of each wanted package: ``wanted`` maps "name.arch" to the
    "epoch:version-release" present in ``repo_dir``."""
    path = _metadata(repo_dir, "other")
    if path is None or not wanted:
        return {}
    found: dict[str, list[ChangelogEntry]] = {}
    try:
        with open_compressed(path) as stream:
            for _event, elem in ET.iterparse(stream, events=("end",)):
                if elem.tag != f"{OTHER_NS}package":
                    continue
                key = f"{elem.get('name')}.{elem.get('arch')}"
                version = elem.find(f"{OTHER_NS}version")
                evr = (
                    ""
                    if version is None
                    else f"{version.get('epoch') or '0'}:{version.get('ver')}-{version.get('rel')}"
                )
                if wanted.get(key) == evr:
                    entries = [
                        ChangelogEntry(
                            _day(c.get("date")), c.get("author") or "", (c.text or "").strip()
                        )
                        for c in elem.findall(f"{OTHER_NS}changelog")
                    ]
                    entries.sort(key=lambda e: e.date, reverse=True)
                    found[key] = entries[:limit]
                elem.clear()
    except (OSError, EOFError, lzma.LZMAError, ET.ParseError) as exc:
        raise RepodataError(f"{path}: cannot parse changelog metadata: {exc}") from None
    return found


def _day(epoch_seconds: str | None) -> str:
    try:
        return datetime.fromtimestamp(int(epoch_seconds or 0), UTC).strftime("%Y-%m-%d")
    except (ValueError, OverflowError, OSError):
        return ""


def advisories(repo_dirs: Iterable[Path], wanted: dict[str, str]) -> dict[str, list[Advisory]]:
    """Advisories whose package list names a wanted package at a version up to the new one: the errata
    the change brings.  ``wanted`` maps "name.arch" to the new "epoch:version-release"."""
    found: dict[str, dict[str, Advisory]] = {}
    for repo_dir in repo_dirs:
        path = _metadata(repo_dir, "updateinfo")
        if path is None:
            continue
        try:
            with open_compressed(path) as stream:
                for _event, elem in ET.iterparse(stream, events=("end",)):
                    if elem.tag != "update":
                        continue
                    advisory = _advisory(elem)
                    for pkg in elem.iter("package"):
                        key = f"{pkg.get('name')}.{pkg.get('arch')}"
                        new = wanted.get(key)
                        if new is None:
                            continue
                        fixed = (
                            f"{pkg.get('epoch') or '0'}:{pkg.get('version')}-{pkg.get('release')}"
                        )
                        if _evr_compare(fixed, new) <= 0:
                            found.setdefault(key, {})[advisory.id] = advisory
                    elem.clear()
        except (OSError, EOFError, lzma.LZMAError, ET.ParseError) as exc:
            raise RepodataError(f"{path}: cannot parse updateinfo: {exc}") from None
    return {key: sorted(by_id.values(), key=lambda a: a.id) for key, by_id in found.items()}


def _advisory(elem: ET.Element) -> Advisory:
    issued = elem.find("issued")
    refs = tuple(ref.get("id") or ref.get("title") or "" for ref in elem.iter("reference"))
    return Advisory(
        id=(elem.findtext("id") or "").strip(),
        kind=elem.get("type") or "",
        severity=(elem.findtext("severity") or "").strip(),
        title=(elem.findtext("title") or "").strip(),
        issued=(issued.get("date") if issued is not None else "") or "",
        references=tuple(r for r in refs if r),
    )


def _evr_compare(a: str, b: str) -> int:
    """rpm's own ordering of two "epoch:version-release" strings."""

    def split(evr: str) -> tuple[str, str, str]:
        epoch, _, rest = evr.rpartition(":")
        version, _, release = rest.rpartition("-")
        return epoch or "0", version, release

    return rpm.labelCompare(split(a), split(b))
