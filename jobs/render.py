"""JJB YAML -> Jenkins XML through JJB's own Python API, with the XML `jenkins-jobs test` writes.

The third link of spec -> model -> job definition -> XML -> Jenkins.  `jenkins-jobs test` looks the
project type's module up in the package entry points once per job (about half its run time for
1,000 jobs), re-checks its dependency tree and re-reads component signatures over and over, parses
the whole project as YAML and writes each job through a minidom round trip.  Here each lookup is done
once, the generated project goes to JJB as data, the XML is written straight from the tree
(``jobs.xml_pretty``) and a large project renders in several processes; the rest is JJB's own code,
so the bytes are the same.
"""

from __future__ import annotations

import inspect
import itertools
import multiprocessing
import multiprocessing.pool
import os
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pkg_resources
from jenkins_jobs.config import JJBConfig
from jenkins_jobs.errors import JenkinsJobsException
from jenkins_jobs.loader import load_files
from jenkins_jobs.loc_loader import LocDict, LocList
from jenkins_jobs.position import Pos
from jenkins_jobs.registry import ModuleRegistry
from jenkins_jobs.roots import Roots, root_adders
from jenkins_jobs.xml_config import XmlJobGenerator

from hpcos.core.errors import UserError
from jobs.job_definitions import TEMPLATES_DIR, templates_text
from jobs.rendered import RenderedJob
from jobs.xml_normalise import normalised_digest
from jobs.xml_pretty import job_xml_bytes

JJB_CONFIG = TEMPLATES_DIR / "jenkins_jobs.ini"
# Below this many job entries in a project, one process is quicker than starting more.
PARALLEL_MIN_ENTRIES = 64
MAX_WORKERS = 4


class RenderError(UserError):
    """JJB rejected the job definitions (a template or macro problem, not a spec problem)."""


class _YamlText(str):
    """YAML text that JJB's loader takes as a stream (it has ``read``) while PyYAML keeps the whole
    buffer (it is a ``str``), which JJB needs to quote the offending lines in its error messages."""

    NAME = "<unicode string>"  # what PyYAML calls a string source

    def read(self, *_):
        return str(self)


class _ProjectModules:
    """Project-type name -> JJB module instance, each looked up in the entry points once."""

    def __init__(self, registry: ModuleRegistry):
        self._registry = registry
        self._modules: dict = {}

    def __getitem__(self, kind: str):
        if kind not in self._modules:
            group = XmlJobGenerator.entry_point_group
            found = next(iter(pkg_resources.iter_entry_points(group=group, name=kind)), None)
            if found is None:
                known = ", ".join(
                    sorted(ep.name for ep in pkg_resources.iter_entry_points(group=group))
                )
                raise JenkinsJobsException(
                    f"Unrecognized project-type: {kind} (supported types are: {known})"
                )
            self._modules[kind] = found.load()(self._registry)
        return self._modules[kind]


# What the lookups below found, for the whole process: the render pool's workers fork after the
# warm-up render, so they inherit it (the dependency check alone cost each worker 0.09 s).
_checked: set = set()
_arg_names: dict = {}


@contextmanager
def _repeated_lookups_done_once():
    """Two lookups JJB repeats for every component of every job, whose answers cannot change
    during one process: ``EntryPoint.load()`` re-checks the whole dependency tree of JJB's
    distribution for each of its ~370 components, and ``registry.dispatch`` reads the signature of
    the component function each time it calls one (together a third of a 1,000-job render)."""
    require = pkg_resources.EntryPoint.require
    filter_kwargs = ModuleRegistry.__dict__["_filter_kwargs"]
    checked, arg_names = _checked, _arg_names

    def require_once(entry_point, env=None, installer=None):
        key = (entry_point.dist, tuple(entry_point.extras))
        if key not in checked:
            require(entry_point, env, installer)
            checked.add(key)

    def filter_kwargs_cached(func, **kwargs):
        if func not in arg_names:
            arg_names[func] = frozenset(inspect.getfullargspec(func).args)
        return {name: value for name, value in kwargs.items() if name in arg_names[func]}

    pkg_resources.EntryPoint.require = require_once
    ModuleRegistry._filter_kwargs = staticmethod(filter_kwargs_cached)
    try:
        yield
    finally:
        pkg_resources.EntryPoint.require = require
        ModuleRegistry._filter_kwargs = filter_kwargs


def _located(value, pos: Pos):
    """Plain data -> the position-carrying containers JJB's YAML loader builds."""
    if isinstance(value, dict):
        return LocDict(
            {k: _located(v, pos) for k, v in value.items()},
            pos,
            key_pos=dict.fromkeys(value, pos),
            value_pos=dict.fromkeys(value, pos),
        )
    if isinstance(value, list):
        return LocList([_located(v, pos) for v in value], pos, value_pos=[pos] * len(value))
    return value


@dataclass(frozen=True)
class RenderPool:
    processes: multiprocessing.pool.Pool
    size: int


def render_workers() -> int:
    return min(os.cpu_count() or 1, MAX_WORKERS)


@contextmanager
def render_pool(project: dict | None = None, workers: int | None = None):
    """Worker processes for ``render``, forked now: start them before any thread (a fork copies
    locks that other threads hold).  With ``project``, one job of each of its templates is rendered
    first, here, so that JJB's modules are imported and its entry-point caches filled once for all
    the workers rather than once in each."""
    workers = workers or render_workers()
    if workers <= 1:
        yield None
        return
    if project is not None:
        first_of_each = list(
            {next(iter(entry)): entry for entry in reversed(project["project"]["jobs"])}.values()
        )
        _render(
            templates_text(),
            [{"project": {**project["project"], "jobs": first_of_each}}],
            "warm-up",
        )
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield RenderPool(pool, workers)


def render(
    project: dict,
    source_name: str = "hpcos-jobs.yaml",
    pool: RenderPool | None = None,
    out_dir: Path | None = None,
    digests: bool = False,
) -> list[RenderedJob]:
    """Render the templates instantiated by ``project`` (``jobs.job_definitions.project``), sorted by
    name, and write them under ``out_dir`` if given.  The same XML as `jenkins-jobs test` on
    ``jjb_yaml()``.

    The project is handed to JJB as data, because parsing its YAML text would be a sixth of the work;
    a large project is split into one sub-project per worker process of ``pool`` (or of a pool made
    here), since every job expands, renders and is written independently of the others.  With
    ``digests``, each job carries the digest of its normalised form (``RenderedJob.digest``)."""
    if len(project["project"]["jobs"]) >= PARALLEL_MIN_ENTRIES:
        if pool is not None:
            return _render_split(project, source_name, pool, out_dir, digests)
        with render_pool(project) as own_pool:
            if own_pool is not None:
                return _render_split(project, source_name, own_pool, out_dir, digests)
    return _render_part(project, source_name, out_dir, digests)


def _render_part(
    project: dict, source_name: str, out_dir: Path | None, digests: bool = False
) -> list[RenderedJob]:
    rendered = _render(templates_text(), [project], source_name)
    if out_dir is not None:
        write_jobs(rendered, out_dir)
    if digests:
        rendered = [replace(job, digest=normalised_digest(job.xml)) for job in rendered]
    return rendered


def _render_split(
    project: dict, source_name: str, pool: RenderPool, out_dir: Path | None, digests: bool
) -> list[RenderedJob]:
    entries = project["project"]["jobs"]
    projects = [
        {"project": {**project["project"], "jobs": entries[i :: pool.size]}}
        for i in range(pool.size)
    ]
    rendered = sorted(
        itertools.chain.from_iterable(
            pool.processes.starmap(
                _render_part, [(sub, source_name, out_dir, digests) for sub in projects]
            )
        ),
        key=lambda job: job.name,
    )
    for before, after in itertools.pairwise(rendered):
        if before.name == after.name:  # what JJB's allow_duplicates=False refuses within one render
            raise RenderError(f"{source_name}: duplicate job name {after.name!r}")
    return rendered


def render_yaml(yaml_text: str, source_name: str = "hpcos-jobs.yaml") -> list[RenderedJob]:
    """Render any JJB YAML, sorted by job name."""
    return _render(yaml_text, [], source_name)


def _render(yaml_text: str, items: list[dict], source_name: str) -> list[RenderedJob]:
    config = JJBConfig(str(JJB_CONFIG))
    config.validate()
    stream = _YamlText(yaml_text)
    pos = Pos.from_file(f"{source_name} (generated)", "")
    try:
        with _repeated_lookups_done_once():
            roots = Roots(config)
            load_files(config, roots, [stream])
            for item in items:
                ((kind, contents),) = item.items()
                root_adders[kind](config, roots, _located(contents, pos), pos)
            registry = ModuleRegistry(config, config.builder["plugins_info"])
            registry.set_macros(roots.macros)
            jobs = roots.generate_jobs()
            registry.amend_job_dicts(jobs)
            rendered = _generate(registry, jobs)
    except JenkinsJobsException as exc:
        raise RenderError(_one_line(exc, source_name)) from None
    return sorted(rendered, key=lambda job: job.name)


def _generate(registry: ModuleRegistry, jobs) -> list[RenderedJob]:
    """XmlJobGenerator.generateXML, with the project-type lookup and module list done once."""
    project_modules = _ProjectModules(registry)
    generators = [m for m in registry.modules if hasattr(m, "gen_xml")]
    rendered = []
    for job in jobs:
        data = job.data
        try:
            xml = project_modules[
                data.get(XmlJobGenerator.kind_attribute, XmlJobGenerator.kind_default)
            ].root_xml(data)
            for module in generators:
                module.gen_xml(xml, data)
        except JenkinsJobsException as exc:
            raise exc.with_ctx_list(job.context) from None
        rendered.append(RenderedJob(data["name"], job_xml_bytes(xml, data["name"])))
    return rendered


def _one_line(exc: JenkinsJobsException, source_name: str) -> str:
    """JJB's innermost position and its message (its full report quotes YAML over many lines)."""
    positions = [ctx.pos for ctx in exc.ctx if ctx.pos] + ([exc.pos] if exc.pos else [])
    if not positions:
        return f"{source_name}: {exc.message}"
    pos = positions[-1]
    path = source_name if str(pos.path) == _YamlText.NAME else pos.path
    return f"{path}:{pos.line + 1}: {exc.message}"


def write_jobs(jobs: list[RenderedJob], out_dir: Path) -> list[Path]:
    """Write DIR/<folder>/<job>/config.xml, the layout of `jenkins-jobs test --config-xml -o DIR`."""
    written = []
    for job in jobs:
        path = Path(out_dir, *job.name.split("/"), "config.xml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(job.xml)
        written.append(path)
    return written
