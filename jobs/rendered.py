"""Rendered jobs, and the cache that lets a no-op ``hpcos jobs update`` skip jenkins-job-builder.

Rendering 1,000 jobs through JJB costs seconds of CPU (and importing JJB a second more), yet a
nightly update almost always renders exactly what it rendered the night before.  The XML is a pure
function of its inputs — the templates, the project built from the specs, the JJB version and
hpcos' own rendering code — so the cache is keyed on all of them and is exact: change any input and
the key changes, the jobs are rendered again.  Live configs are still read and compared every time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from hpcos.core.files import write_bytes_atomically

# hpcos' own code and data that shape the XML, beside the templates that the project names.
_RENDERING_SOURCES = ("render.py", "xml_pretty.py", "job_definitions.py", "templates")


@dataclass(frozen=True)
class RenderedJob:
    name: str  # full name: folder/job
    xml: bytes  # byte for byte what `jenkins-jobs test --config-xml` writes
    # The digest of its normalised form (jobs.xml_normalise), when the render was asked for it: the
    # render's worker processes compute it in parallel rather than the update's one thread after.
    digest: str | None = None


def render_key(project: dict) -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    digest.update(metadata.version("jenkins-job-builder").encode())
    for name in _RENDERING_SOURCES:
        path = here / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(file.name.encode() + b"\0" + file.read_bytes())
    digest.update(json.dumps(project, sort_keys=True, default=str).encode())
    return digest.hexdigest()


class RenderCache:
    """One file per site: the key and every job's XML (gzip'd JSON)."""

    def __init__(self, path: Path | None):
        self.path = path

    def load(self, key: str) -> list[RenderedJob] | None:
        if self.path is None:
            return None
        try:
            data = json.loads(gzip.decompress(self.path.read_bytes()))
        except (OSError, ValueError, EOFError):
            return None  # no cache, or a damaged one: render
        if (
            not isinstance(data, dict)
            or data.get("key") != key
            or not isinstance(data.get("jobs"), dict)
        ):
            return None
        return [
            RenderedJob(name, xml.encode("utf-8")) for name, xml in sorted(data["jobs"].items())
        ]

    def save(self, key: str, jobs: list[RenderedJob]) -> None:
        if self.path is None:
            return
        payload = {"key": key, "jobs": {job.name: job.xml.decode("utf-8") for job in jobs}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomically(
                self.path, gzip.compress(json.dumps(payload).encode(), compresslevel=1)
            )
        except OSError:
            pass  # a cache that cannot be written only costs time on the next run
