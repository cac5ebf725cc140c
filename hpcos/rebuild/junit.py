"""A JUnit XML result per build, for Jenkins: one test case per stage (source, patch, build, publish),
the classified failure as the failing case's message, and where its logs are archived."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass
class StageResult:
    name: str
    seconds: float
    # None: passed; otherwise (type, message, details).
    failure: tuple[str, str, str] | None = None
    skipped: bool = False
    log: Path | None = None
    reason: str | None = None  # why a skipped stage was skipped, when not for an earlier failure


def write(path: Path, package: str, target: str, stages: list[StageResult]) -> None:
    suite = ET.Element(
        "testsuite",
        {
            "name": f"hpcos.build.{package}.{target}",
            "tests": str(len(stages)),
            "failures": str(sum(1 for s in stages if s.failure)),
            "errors": "0",
            "skipped": str(sum(1 for s in stages if s.skipped)),
            "time": f"{sum(s.seconds for s in stages):.3f}",
        },
    )
    for stage in stages:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"hpcos.build.{package}.{target}",
                "name": stage.name,
                "time": f"{stage.seconds:.3f}",
            },
        )
        if stage.failure:
            kind, message, details = stage.failure
            ET.SubElement(case, "failure", {"type": kind, "message": message}).text = details
        elif stage.skipped:
            ET.SubElement(case, "skipped", {"message": stage.reason or "an earlier stage failed"})
        if stage.log:
            ET.SubElement(case, "system-out").text = f"log: {stage.log}"
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
