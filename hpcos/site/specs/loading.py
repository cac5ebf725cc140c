"""Loading the specs directory: every file parsed and validated, the cross-file checks run, and all
errors of all files collected (``file:line: field: message``) before anything is raised."""

from __future__ import annotations

from pathlib import Path

from hpcos.core import sourced_yaml
from hpcos.core.sourced_yaml import InputError, InvalidInput, SourcedDoc
from hpcos.site.specs.checks import SiteNames, package_checks, site_checks
from hpcos.site.specs.model import SITE_FILE, Package, SiteSpec, SpecSet


def load_specs(root: str | Path) -> SpecSet:
    """Load and check ``root/site.yaml`` and every other ``root/*.yaml``; raise InvalidInput with all errors.

    The checks that span files (an overlay named in a package exists in the site, ...) read the
    site's names from its raw data, so a mistake in site.yaml does not hide the packages' mistakes.
    """
    root = Path(root)
    display_root = root.parent
    if not (root / SITE_FILE).is_file():
        raise InvalidInput([InputError(str(root / SITE_FILE), 0, "", "site file not found")])
    errors: list[InputError] = []
    docs: dict[str, SourcedDoc] = {}

    site_doc, site = _parse(root / SITE_FILE, SiteSpec, display_root, errors)
    if site_doc is not None:
        docs[str(root / SITE_FILE)] = site_doc
        errors.extend(_not_reported(site_checks(site_doc), errors))
    names = SiteNames.of(site_doc.data if site_doc is not None else None)

    for path in sorted(root.glob("*.yml")):
        errors.append(
            InputError(
                str(path.relative_to(display_root)),
                0,
                "",
                "not read: package specs are named NAME.yaml, not .yml",
            )
        )

    packages: dict[str, Package] = {}
    first_doc: dict[str, SourcedDoc] = {}
    for path in sorted(root.glob("*.yaml")):
        if path.name == SITE_FILE:
            continue
        doc, package = _parse(path, Package, display_root, errors)
        if doc is None:
            continue
        docs[str(path)] = doc
        errors.extend(
            _not_reported(package_checks(root, names, doc, _reported(errors, doc)), errors)
        )
        name = doc.data.get("name") if isinstance(doc.data, dict) else None
        if isinstance(name, str) and name in first_doc:
            errors.append(
                doc.error(
                    ("name",),
                    f"expected a package name not used before; found {name!r}, "
                    f"already defined in {first_doc[name].name}",
                )
            )
            continue
        if isinstance(name, str):
            first_doc[name] = doc
        if package is not None:
            packages[package.name] = package
    if errors:
        raise InvalidInput(errors)
    return SpecSet(root=root, site=site, packages=packages, docs=docs)


def _reported(errors: list[InputError], doc: SourcedDoc) -> set[str]:
    return {e.field for e in errors if e.file == doc.name}


def _not_reported(new: list[InputError], errors: list[InputError]) -> list[InputError]:
    """Cross-file checks say nothing more about a field the model already rejected."""
    seen = {(e.file, e.field) for e in errors}
    return [e for e in new if (e.file, e.field) not in seen]


def _parse(path: Path, model, display_root: Path, errors: list[InputError]):
    """(doc, validated model); (doc, None) when the model rejects it; (None, None) when it is not YAML."""
    try:
        doc = sourced_yaml.load(path, display_root)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return None, None
    errors.extend(sourced_yaml.strip_credentials(model, doc, _credential_advice))
    try:
        return doc, sourced_yaml.validate(model, doc)
    except InvalidInput as exc:
        errors.extend(exc.errors)
        return doc, None


def _credential_advice(loc) -> str:
    section = loc[0] if loc else ""
    if section == "jenkins":
        return (
            "give them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the environment, "
            "or as a `machine` entry for the Jenkins host in ~/.netrc"
        )
    if section == "tracker":
        return (
            "give them as HPCOS_TRACKER_USER and HPCOS_TRACKER_PASSWORD (or HPCOS_TRACKER_TOKEN) in the "
            "environment, or as a `machine` entry for the tracker host in ~/.netrc"
        )
    return "give them as a `machine` entry for that host in ~/.netrc"
