"""Specs -> JJB job definitions: the project that instantiates ``jobs/templates/`` for one site.

The second link of spec -> model -> job definition -> XML -> Jenkins.  Pure: a SpecSet in, JJB YAML
data and text out.  What each job runs is in the templates; this module only decides which jobs
exist and with which values.
"""

from __future__ import annotations

import email.utils
import re
import shlex
from pathlib import Path

import yaml

from hpcos.site.specs import SpecSet

TEMPLATES_DIR = Path(__file__).parent / "templates"
# Order matters only for readers of `hpcos jobs yaml`: defaults, then macros, then templates.
TEMPLATE_FILES = ("defaults.yaml", "macros.yaml", "job-templates.yaml")

MARKER_PREFIX = "Managed by hpcos for site "


def marker(site_name: str) -> str:
    """The line in every generated job's description that marks it as ours (see ``--prune``)."""
    return f"{MARKER_PREFIX}{site_name}: change overlay_specs/ and run `hpcos jobs update`, not this page."


def is_managed(description: str | None, site_name: str) -> bool:
    return bool(description) and f"{MARKER_PREFIX}{site_name}:" in description


# What Jenkins' mailer takes as a recipient; anything else (no address in `owner`) mails nobody.
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def owner_email(owner: str) -> str:
    address = email.utils.parseaddr(owner)[1]
    return address if _EMAIL.fullmatch(address) else ""


def project(spec_set: SpecSet) -> dict:
    """The JJB ``project`` that lists every job of the site, with the values its template needs."""
    site = spec_set.site
    jobs: list[dict] = [{"hpcos-folder": {}}]

    for package in sorted(spec_set.packages.values(), key=lambda p: p.name):
        # One entry per target: each target's job runs on agents of its architecture.
        for target in package.targets:
            jobs.append(
                {
                    "hpcos-rebuild": {
                        "package": package.name,
                        "target": target,
                        "build_label": spec_set.build_label(target),
                        "overlay": package.overlay,
                        "owner": package.owner,
                        "owner_email": owner_email(package.owner),
                        "poll": package.poll,
                    }
                }
            )

    for overlay_name in sorted(site.overlays):
        rebuilds = [
            f"rebuild-{p.name}-{t}"
            for p in sorted(spec_set.overlay_packages(overlay_name), key=lambda p: p.name)
            for t in p.targets
        ]
        # An overlay with no package yet has nothing to publish; its publish job appears with the first one.
        if rebuilds:
            jobs.append(
                {"hpcos-publish": {"overlay": overlay_name, "rebuild_jobs": ", ".join(rebuilds)}}
            )

    for env_name, env in site.environments.items():
        if env.source is None:
            jobs.append(
                {
                    "hpcos-mirror-sync": {
                        "environment": env_name,
                        "schedule": env.schedule or "H 1 * * *",
                    }
                }
            )
        elif env.gate == "nightly":
            # Configuration repositories move with the packages into the gated environment.
            with_config = (
                " --with-config" if site.config.repositories and env.source == "testing" else ""
            )
            jobs.append(
                {
                    "hpcos-promote-gated": {
                        "source": env.source,
                        "environment": env_name,
                        "with_config": with_config,
                    }
                }
            )
            # The nightly run tests what the gated promotion would take: the gate's source environment,
            # after each promotion into it and each fast path (which changes it too).
            feeders = [
                f"promote-{e.source}-{name}"
                for name, e in site.environments.items()
                if name == env.source and e.source is not None
            ]
            if feeders:
                feeders += [
                    f"fastpath-{o}"
                    for o, overlay in sorted(site.overlays.items())
                    if overlay.fastpath
                ]
            if feeders:
                jobs.append(
                    {
                        "hpcos-nightly": {
                            "environment": env.source,
                            "gated": env_name,
                            "after": ", ".join(feeders),
                        }
                    }
                )
        else:
            jobs.append(
                {
                    "hpcos-promote": {
                        "source": env.source,
                        "environment": env_name,
                        "schedule": env.schedule or "H 2 * * *",
                    }
                }
            )

    # The fast path deploys production itself when the site names production's profile.
    deploy_arg = (
        f" --deploy {shlex.quote(site.harness.production_profile)}"
        if site.harness.production_profile
        else ""
    )
    for overlay_name, overlay in sorted(site.overlays.items()):
        if overlay.fastpath:
            jobs.append({"hpcos-fastpath": {"overlay": overlay_name, "deploy_arg": deploy_arg}})

    gated = [name for name, env in site.environments.items() if env.gate == "nightly"]
    if site.harness.production_profile and "production" in gated:
        # The plan follows every nightly pass; the rollout is by hand, confirmed with the snapshot's id.
        jobs.append({"hpcos-outage-plan": {}})
        jobs.append({"hpcos-outage-run": {"production_profile": site.harness.production_profile}})

    if site.config.repositories:
        jobs.append({"hpcos-config-promote": {}})
        jobs.append({"hpcos-config-merge-back": {}})
        for name, repository in sorted(site.config.repositories.items()):
            jobs.append(
                {
                    "hpcos-config-validate": {
                        "repository": name,
                        "kind": repository.kind,
                        "url": repository.url,
                        "branch": repository.testing,
                    }
                }
            )

    return _escaped(
        {
            "project": {
                "name": site.name,
                "site": site.name,
                "folder": site.jenkins.folder,
                "marker": marker(site.name),
                "build_label": site.jenkins.build_label,
                "test_label": site.jenkins.test_label,
                "publish_label": site.jenkins.publish_label,
                "profile": site.harness.profile,
                # What the nightly shell step passes to `hpcos test --cluster`: one shell word, whatever the path.
                "profile_arg": shlex.quote(site.harness.profile),
                "jobs": jobs,
            }
        }
    )


def _escaped(value):
    """Every string with JJB's template braces doubled: JJB formats each value it substitutes into a
    template once more, so a ``{folder}`` in an owner or label would be expanded and a lone ``{`` would
    stop the render.  Doubled, JJB's formatting gives back the value as written."""
    if isinstance(value, dict):
        return {k: _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    if isinstance(value, str):
        return value.replace("{", "{{").replace("}", "}}")
    return value


def templates_text() -> str:
    return "\n".join((TEMPLATES_DIR / name).read_text() for name in TEMPLATE_FILES)


def jjb_yaml(spec_set: SpecSet) -> str:
    """The whole JJB input for the site: templates, then the generated project.  Plain `jenkins-jobs`
    reads this and writes the same XML as `hpcos jobs render`."""
    generated = yaml.safe_dump(
        [project(spec_set)], sort_keys=False, default_flow_style=False, width=1000
    )
    return (
        templates_text()
        + f"\n# Generated by hpcos from the specs of site {spec_set.site.name}; do not edit.\n"
        + generated
    )
