"""``hpcos build PKG --export-patches DIR``: each site patch, ready to send upstream, with a header
carrying the reason the site carries it and the upstream bug it belongs to.

A ``git format-patch`` file keeps its mail headers (so ``git am`` still takes it); the reason and
link go into the commit message as trailers, before the ``---`` line.  A plain diff gets a DEP-3
header (Description / Bug / Forwarded), which patch(1) skips as leading text.
"""

from __future__ import annotations

from pathlib import Path

from hpcos.site.specs import Package, Patch, SpecSet


def export_patches(spec_set: SpecSet, package: Package, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for patch in package.patches:
        text = spec_set.patch_path(package, patch).read_text(errors="replace")
        dest = out_dir / Path(patch.file).name
        dest.write_text(with_header(text, patch, package, spec_set.site.name))
        written.append(dest)
    return written


def with_header(text: str, patch: Patch, package: Package, site: str) -> str:
    reason = " ".join(patch.reason.split())
    origin = f"Carried by site {site} in the {package.overlay} build of {package.name} ({package.owner})."
    lines = text.splitlines(keepends=True)
    if text.startswith("From ") and any(line.rstrip("\n") == "---" for line in lines):
        separator = next(i for i, line in enumerate(lines) if line.rstrip("\n") == "---")
        trailers = [f"Reason: {reason}\n"]
        if patch.upstream:
            trailers.append(f"Link: {patch.upstream}\n")
        trailers.append(f"Origin: {origin}\n")
        before = lines[:separator]
        if before and before[-1].strip():
            trailers.insert(0, "\n")
        return "".join(before + trailers + lines[separator:])
    header = [f"Description: {reason}\n"]
    header.append(f"Bug: {patch.upstream}\n" if patch.upstream else "Forwarded: no\n")
    header.append(f"Origin: {origin}\n")
    return "".join(header) + "---\n" + text
