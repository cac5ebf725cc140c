"""What one file's model cannot see: checks that span site.yaml and the package specs, or reach the
file system (a package's overlay, mirror and targets exist in the site; its patches are files, and
diffs, inside the specs directory; the environments' sources form no cycle).

They read the site's names from its raw data, valid or not, so a mistake in site.yaml does not hide
the packages' mistakes; a field the model already rejected is not reported again (``loading``).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import string
from dataclasses import dataclass
from pathlib import Path

from hpcos.core.sourced_yaml import InputError, SourcedDoc
from hpcos.site.specs.model import ARCHES, PATCH_DIR, PLACEHOLDERS, UPSTREAM_SOURCES


@dataclass(frozen=True)
class SiteNames:
    """The names packages refer to, from site.yaml's raw data (valid or not).

    None where site.yaml has no usable section: then there is nothing to check against, and the
    site's own error says why.
    """

    overlays: dict | None
    mirrors: dict | None
    targets: dict | None

    @classmethod
    def of(cls, data) -> SiteNames:
        def names(key) -> dict | None:
            value = _section(data, key)
            return (
                {str(k): _mapping(v) for k, v in value.items()} if isinstance(value, dict) else None
            )

        return cls(names("overlays"), names("mirrors"), names("targets"))


def _section(data, *path):
    """``data[path...]`` when every step has the expected shape, else None (the model reports shapes)."""
    for key in path:
        if isinstance(key, int):
            data = data[key] if isinstance(data, list) and key < len(data) else None
        else:
            data = data.get(key) if isinstance(data, dict) else None
    return data


def _one_of(found: str, known) -> str:
    known = sorted(map(str, known))
    message = (
        f"expected one of: {', '.join(known)}"
        if known
        else "expected a name defined in site.yaml (none are)"
    )
    message += f"; found {found!r}"
    hint = difflib.get_close_matches(found, known, n=1)
    return message + (f"; did you mean {hint[0]!r}?" if hint else "")


def _placeholder_problem(value) -> str | None:
    if not isinstance(value, str):
        return None
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        return f"expected text with only the placeholders {allowed} ({exc}); found {value!r}"
    unknown = [name for name in used if name not in PLACEHOLDERS]
    if unknown:
        return f"expected only the placeholders {allowed}; found {{{unknown[0]}}}"
    return None


# Binary package names that any real exclude list must leave alone.
_CORE_PACKAGES = ("bash", "glibc", "systemd", "coreutils")


def _too_broad(globs) -> list[tuple[int, str]]:
    """(index, message) for each glob that would empty a mirror."""
    return [
        (
            i,
            f"expected a glob naming some packages (it would leave bash, glibc and systemd out of the "
            f"mirror); found {glob!r}",
        )
        for i, glob in enumerate(globs if isinstance(globs, list) else [])
        if isinstance(glob, str) and all(fnmatch.fnmatchcase(core, glob) for core in _CORE_PACKAGES)
    ]


def _mapping(value) -> dict:
    return value if isinstance(value, dict) else {}


def site_checks(doc: SourcedDoc) -> list[InputError]:
    data = doc.data
    errors: list[InputError] = []

    environments = _section(data, "environments")
    if isinstance(environments, dict) and environments:
        roots = []
        for name, env in environments.items():
            source = _section(env, "source")
            if source is None:
                roots.append(name)
                if _section(env, "gate") == "nightly":
                    errors.append(
                        doc.error(
                            ("environments", name, "gate"),
                            "expected a source environment "
                            "for a nightly gate (the gate tests the source's snapshot); found "
                            "no source",
                        )
                    )
            elif isinstance(source, str) and source not in environments:
                errors.append(
                    doc.error(("environments", name, "source"), _one_of(source, environments))
                )
            elif source == name:
                errors.append(
                    doc.error(
                        ("environments", name, "source"),
                        f"expected another environment; found {name!r} itself",
                    )
                )
        if len(roots) > 1:
            for name in roots[1:]:
                errors.append(
                    doc.error(
                        ("environments", name),
                        f"expected a source: only one environment is filled by the mirror sync "
                        f"({roots[0]!r}), every other one is promoted from another; found none",
                    )
                )
        errors.extend(_cycle_errors(doc, environments))

    for name, mirror in _mapping(_section(data, "mirrors")).items():
        for key in ("url", "gpgkey"):
            if problem := _placeholder_problem(_section(mirror, key)):
                errors.append(doc.error(("mirrors", name, key), problem))
        for i, problem in _too_broad(_section(mirror, "exclude")):
            errors.append(doc.error(("mirrors", name, "exclude", i), problem))
    for i, problem in _too_broad(_section(data, "exclude")):
        errors.append(doc.error(("exclude", i), problem))

    for name, target in _mapping(_section(data, "targets")).items():
        release, arch = _section(target, "release"), _section(target, "arch")
        said = re.search(r"(?:el|rhel|rocky|alma|centos)(\d+)", str(name))
        if said and isinstance(release, int) and int(said[1]) != release:
            errors.append(
                doc.error(
                    ("targets", name, "release"),
                    f"expected {said[1]}, as the target's name {name!r} says; found {release}",
                )
            )
        named_arch = next((a for a in ARCHES if a in str(name)), None)
        if named_arch and isinstance(arch, str) and arch != named_arch:
            errors.append(
                doc.error(
                    ("targets", name, "arch"),
                    f"expected {named_arch!r}, as the target's name {name!r} says; found {arch!r}",
                )
            )
    return errors


def _cycle_errors(doc: SourcedDoc, environments: dict) -> list[InputError]:
    errors = []
    reported: set[str] = set()
    for start in environments:
        seen = [start]
        current = _section(environments[start], "source")
        while isinstance(current, str) and current in environments and current not in seen:
            seen.append(current)
            current = _section(environments[current], "source")
        if current == start and len(seen) > 1 and not reported & set(seen):
            reported.update(seen)
            chain = " <- ".join(seen + [start])
            errors.append(
                doc.error(
                    ("environments", start, "source"),
                    f"expected a chain that starts at the mirrored environment; found a cycle: "
                    f"{chain}",
                )
            )
    return errors


def package_checks(
    root: Path, names: SiteNames, doc: SourcedDoc, rejected: set[str]
) -> list[InputError]:
    """Checks that need the site and the file system (``rejected``: fields the model already refused)."""
    data = _mapping(doc.data)
    errors: list[InputError] = []

    def add(loc, message):
        errors.append(doc.error(loc, message))

    overlay = data.get("overlay")
    if isinstance(overlay, str) and names.overlays is not None and overlay not in names.overlays:
        add(("overlay",), _one_of(overlay, names.overlays))

    upstream = _mapping(data.get("upstream"))
    if upstream:
        mirror = upstream.get("mirror")
        if isinstance(mirror, str) and names.mirrors is not None and mirror not in names.mirrors:
            add(("upstream", "mirror"), _one_of(mirror, names.mirrors))
        if upstream.get("srpm_name") and not mirror:
            add(
                ("upstream", "srpm_name"),
                "expected only with upstream.mirror (it names the source package "
                "there); found it with " + (_given_source(upstream) or "no source"),
            )
        if upstream.get("sha256") and not (upstream.get("srpm_url") or upstream.get("srpm_path")):
            add(
                ("upstream", "sha256"),
                "expected only with srpm_url or srpm_path (a mirror's packages are "
                "checked by their signature, see gpgkey); found it with "
                + (_given_source(upstream) or "no source"),
            )
        for key in ("srpm_url", "srpm_path", "gpgkey"):
            if problem := _placeholder_problem(upstream.get(key)):
                add(("upstream", key), problem)

    targets = data.get("targets") if isinstance(data.get("targets"), list) else []
    site_targets = names.targets or {}
    seen_targets: set[str] = set()
    for i, target in enumerate(targets):
        if not isinstance(target, str):
            continue
        if names.targets is not None and target not in site_targets:
            add(("targets", i), _one_of(target, names.targets))
        elif target in seen_targets:
            add(("targets", i), f"expected each target once; found {target!r} again")
        seen_targets.add(target)
    for target in _mapping(data.get("mock_config")):
        if str(target) not in targets:
            add(
                ("mock_config", target),
                "expected one of the package's targets: "
                + ", ".join(map(str, targets))
                + f"; found {target!r}",
            )

    srpm_path = upstream.get("srpm_path")
    if isinstance(srpm_path, str) and not Path(srpm_path).is_absolute():
        for target in [t for t in targets if t in site_targets] or [None]:
            fields = _target_fields(site_targets, target)
            try:
                expanded = srpm_path.format(**fields) if target else srpm_path
            except (KeyError, IndexError, ValueError):
                break  # reported by the placeholder check
            problem = _file_problem(root, root / expanded, srpm_path)
            if problem:
                add(("upstream", "srpm_path"), problem)
                break

    # The patch directory and the replaced globs follow the name: only a valid one says where to look.
    name = data.get("name") if "name" not in rejected else None
    replaces = data.get("replaces")
    if (
        isinstance(name, str)
        and isinstance(replaces, list)
        and replaces
        and all(isinstance(g, str) for g in replaces)
    ):
        if not any(fnmatch.fnmatchcase(name, glob) for glob in replaces):
            add(
                ("replaces",),
                f"expected globs that cover the package's own name {name!r} (else the base "
                f"mirror keeps shipping it beside the overlay's build); found {replaces!r}",
            )
    for i, problem in _too_broad(replaces):
        add(("replaces", i), problem)

    patches = data.get("patches") if isinstance(data.get("patches"), list) else []
    seen_files: dict[str, int] = {}
    for i, patch in enumerate(patches):
        file = _section(patch, "file")
        if not isinstance(file, str) or not isinstance(name, str):
            continue
        if file in seen_files:
            add(
                ("patches", i, "file"),
                f"expected each patch once; found {file!r} again "
                f"(also patches[{seen_files[file]}])",
            )
            continue
        seen_files[file] = i
        problem = _file_problem(root, root / PATCH_DIR / name / file, file, patch=True)
        if problem:
            add(("patches", i, "file"), problem)
    return errors


def _given_source(upstream: dict) -> str:
    return ", ".join(k for k in UPSTREAM_SOURCES if upstream.get(k))


def _target_fields(site_targets: dict, target: str | None) -> dict[str, str]:
    if target is None:
        return {}
    spec = site_targets[target]
    return {
        "release": str(spec.get("release", "")),
        "arch": str(spec.get("arch", "")),
        "target": target,
    }


def _file_problem(root: Path, path: Path, given: str, patch: bool = False) -> str | None:
    """Why ``path`` (written as ``given``) cannot be used, or None."""
    specs_root = root.resolve()
    resolved = path.resolve()
    if not resolved.is_relative_to(specs_root):
        return f"expected a path inside the specs directory {root}; found {given!r}, which leads outside"
    shown = resolved.relative_to(specs_root.parent)
    if not resolved.is_file():
        return f"expected an existing file; found {given!r}, but {shown} does not exist"
    if patch and not _looks_like_diff(resolved):
        return f"expected a unified diff (git format-patch or diff -u); found {given!r}, which has no ---/+++/@@ lines"
    return None


def _looks_like_diff(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return bool(re.search(r"^--- .*\n\+\+\+ .*\n@@ ", text, re.MULTILINE))
