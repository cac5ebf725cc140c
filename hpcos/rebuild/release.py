"""The release rule: where an overlay build sorts among the upstream builds it replaces.

An overlay build keeps the upstream Epoch, Version and Release exactly and appends the site tag:

    upstream 1.el9        ->  overlay 1.el9.hpc1
    upstream 1.el9_3.1    ->  overlay 1.el9_3.1.hpc1

rpm compares releases segment by segment (``rpm.labelCompare``, the same code as ``rpmdev-vercmp``):

* the overlay is newer than the base build it replaces, because it has every base segment plus more
  (``1.el9 < 1.el9.hpc1``), so dnf picks it over the mirrored build;
* any upstream update is newer than the overlay, because upstream bumps a *numeric* segment where the
  overlay has the *alphabetic* tag, and rpm ranks a numeric segment above an alphabetic one
  (``1.el9.hpc1 < 2.el9``, ``1.el9.hpc1 < 1.el9_3.1``, ``1.el9.hpc1 < 1.el9.1``).

That is why the site tag must start with a letter (``Package.release_tag`` enforces ``.[A-Za-z]...``):
an overlay never hides an upstream update, and ``hpcos build --check-upstream`` sees the update and
rebuilds the overlay on top of it.  Raising the tag (``.hpc1`` -> ``.hpc2``) supersedes an earlier
overlay build of the same base.

The base release comes from the SRPM header, not from re-expanding ``%{?dist}`` on the build host:
a build host defines ``dist`` as ``.el9`` while the SRPM may carry ``.el9_3``, and rebuilding with
the host's value would sort *below* the base build.
"""

from __future__ import annotations

import re

from hpcos.rpms.evr import Evr


def build_tag(tag: str, counter: int = 1) -> str:
    """The site tag of the ``counter``-th build of one base: ``.hpc1``, then ``.hpc1.2``, ``.hpc1.3``...

    Builds are immutable: a second build of the same base (changed site patches, a fixed build
    host) must not reuse the first one's NEVRA, so it counts up; ``.hpc1.2`` sorts above ``.hpc1``
    (a longer release with equal leading segments is newer), and both below the next upstream build."""
    return tag if counter <= 1 else f"{tag}.{counter}"


def overlay_release(base_release: str, tag: str, counter: int = 1) -> str:
    """The overlay's Release for a base build's Release: ``1.el9`` + ``.hpc1`` -> ``1.el9.hpc1``."""
    return base_release + build_tag(tag, counter)


def overlay_evr(base: Evr, tag: str, counter: int = 1) -> Evr:
    return Evr(base.epoch, base.version, overlay_release(base.release, tag, counter))


def site_build(release: str, tag: str) -> tuple[str, int] | None:
    """(base release, build counter) of an overlay build's Release, or None when another tag made it.

    The tag is where the spec put it: appended (``1.el9.hpc1.2``) or, for the kernel's
    ``%{?buildid}``, before the dist tag (``427.13.1.hpc1.2.el9_4``)."""
    matches = list(re.finditer(re.escape(tag) + r"(?:\.(\d+))?(?=\.|$)", release))
    if not matches:
        return None
    match = matches[-1]
    base = release[: match.start()] + release[match.end() :]
    return (base, int(match.group(1) or 1)) if base else None


def base_of(overlay: Evr, tag: str) -> Evr | None:
    """The base build an overlay build was made from, or None when it was made with another site tag."""
    found = site_build(overlay.release, tag)
    return Evr(overlay.epoch, overlay.version, found[0]) if found else None


def next_counter(base: Evr, tag: str, existing: set[Evr] | list[Evr]) -> int:
    """The build counter for a new overlay build of ``base``: one past every build of it that any
    repository or snapshot already holds, so no NEVRA is ever published twice."""
    counters = [
        found[1]
        for evr in existing
        if (evr.epoch, evr.version) == (base.epoch, base.version)
        and (found := site_build(evr.release, tag))
        and found[0] == base.release
    ]
    return max(counters, default=0) + 1
