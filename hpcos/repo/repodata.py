"""Read and write RPM repository metadata.

Reading parses ``repomd.xml`` and the primary XML directly (streamed with iterparse).  Measured by
bench/repodata.py on 20,000 packages it is somewhat faster than ``dnf repoquery --repofrompath``
(about 0.5 s against 0.7 s here) and gives the same NEVRAs, without a dnf cache directory or a dnf
process per repository, and it reads whatever compression an upstream uses.  Writing is
createrepo_c's job.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hpcos.core import runner
from hpcos.core.errors import UserError

REPO_NS = "{http://linux.duke.edu/metadata/repo}"
COMMON_NS = "{http://linux.duke.edu/metadata/common}"


@dataclass(frozen=True, order=True)
class PackageRecord:
    name: str
    epoch: str
    version: str
    release: str
    arch: str
    location: str = ""
    checksum_type: str = ""
    checksum: str = ""

    @property
    def nevra(self) -> str:
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    @property
    def evr(self) -> str:
        return f"{self.epoch}:{self.version}-{self.release}"


class RepodataError(UserError):
    pass


def primary_location(repo_dir: Path) -> Path:
    primary = locations(repo_dir).get("primary")
    if primary is None:
        raise RepodataError(f"{repo_dir / 'repodata' / 'repomd.xml'}: no primary metadata listed")
    return primary


def open_compressed(path: Path) -> IO[bytes]:
    if path.suffix == ".gz":
        return gzip.open(path)
    if path.suffix == ".xz":
        return lzma.open(path)
    if path.suffix == ".bz2":
        return bz2.open(path)
    if path.suffix == ".zst":
        # No zstd in the standard library before 3.14; the zstd tool ships wherever createrepo_c does.
        zstd = shutil.which("zstd")
        if not zstd:
            raise RepodataError(
                f"{path}: zstd-compressed metadata needs the zstd tool (apt-get install zstd)"
            )
        proc = runner.run([zstd, "-dc", str(path)], timeout=600)
        if proc.exit_code:
            raise RepodataError(f"{path}: zstd failed: {proc.stderr.strip()}")
        return io.BytesIO(proc.stdout_bytes)
    return open(path, "rb")


# Upstream metadata a mirror must keep beside the package lists: package groups (comps), module
# streams (without them EL8/9 AppStream's modular packages lose their filtering) and errata.
CARRIED_TYPES = ("group", "modules", "updateinfo")


def locations(repo_dir: Path) -> dict[str, Path]:
    repomd = repo_dir / "repodata" / "repomd.xml"
    try:
        root = ET.parse(repomd).getroot()
    except (OSError, ET.ParseError) as exc:
        raise RepodataError(f"{repomd}: cannot read repository metadata: {exc}") from None
    return {
        data.get("type"): repo_dir / data.find(f"{REPO_NS}location").get("href")
        for data in root.iter(f"{REPO_NS}data")
    }


def carry_over(upstream_dir: Path, repo_dir: Path) -> list[str]:
    """Add ``upstream_dir``'s groups, modules and errata to ``repo_dir``'s fresh metadata."""
    modifyrepo = shutil.which("modifyrepo_c")
    carried = []
    for mdtype, source in locations(upstream_dir).items():
        if mdtype not in CARRIED_TYPES:
            continue
        if not modifyrepo:
            raise UserError(
                "modifyrepo_c not found: apt-get install createrepo-c (or dnf install createrepo_c)"
            )
        plain = repo_dir / f".{mdtype}.{'yaml' if mdtype == 'modules' else 'xml'}"
        with open_compressed(source) as stream:
            plain.write_bytes(stream.read())
        try:
            proc = runner.run(
                [
                    modifyrepo,
                    f"--mdtype={mdtype}",
                    "--compress-type=gz",
                    str(plain),
                    str(repo_dir / "repodata"),
                ],
                timeout=600,
            )
        finally:
            plain.unlink()
        if proc.exit_code:
            raise UserError(f"modifyrepo_c {mdtype} into {repo_dir} failed: {proc.stderr.strip()}")
        carried.append(mdtype)
    return carried


def read_packages(repo_dir: Path) -> list[PackageRecord]:
    """Every package listed in the repository's primary metadata."""
    path = primary_location(repo_dir)
    try:
        with open_compressed(path) as stream:
            return list(_parse_primary(stream))
    except (OSError, EOFError, lzma.LZMAError, ET.ParseError) as exc:
        raise RepodataError(f"{path}: cannot parse primary metadata: {exc}") from None


def _parse_primary(stream: IO[bytes]) -> Iterator[PackageRecord]:
    for _event, elem in ET.iterparse(stream, events=("end",)):
        if elem.tag != f"{COMMON_NS}package":
            continue
        version = elem.find(f"{COMMON_NS}version")
        checksum = elem.find(f"{COMMON_NS}checksum")
        yield PackageRecord(
            name=elem.findtext(f"{COMMON_NS}name"),
            epoch=version.get("epoch") or "0",
            version=version.get("ver"),
            release=version.get("rel"),
            arch=elem.findtext(f"{COMMON_NS}arch"),
            location=elem.find(f"{COMMON_NS}location").get("href"),
            checksum_type=checksum.get("type") if checksum is not None else "",
            checksum=checksum.text if checksum is not None else "",
        )
        elem.clear()  # keeps memory flat on a 60,000-package primary


def create(repo_dir: Path, reuse_from: Path | None = None) -> None:
    """Write fresh metadata for ``repo_dir``; ``reuse_from`` lends the metadata of unchanged packages.

    Snapshot RPMs are hard links into the content store, so an unchanged package has the same size
    and mtime in the previous snapshot and createrepo_c's --update skips re-reading its header.
    """
    createrepo = shutil.which("createrepo_c")
    if not createrepo:
        raise UserError(
            "createrepo_c not found: apt-get install createrepo-c (or dnf install createrepo_c)"
        )
    cmd = [createrepo, "--quiet", "--no-database", "--general-compress-type=gz"]
    if reuse_from is not None and (reuse_from / "repodata" / "repomd.xml").is_file():
        cmd += ["--update", "--update-md-path", str(reuse_from)]
    cmd.append(str(repo_dir))
    proc = runner.run(cmd, timeout=3600)
    if proc.exit_code:
        raise UserError(
            f"createrepo_c {repo_dir} failed: {proc.stderr.strip() or proc.stdout.strip()}"
        )
