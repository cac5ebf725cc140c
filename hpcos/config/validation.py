"""Validation per kind, before a configuration change reaches production.

- puppet: ``puppet parser validate`` on every manifest, then ``puppet apply --noop`` on the testing
  environment, with the branches laid out as r10k does (one environment directory per branch,
  named as Puppet requires: ``[a-z0-9_]+``).  The noop run's "Out of sync" count is the number of
  resources the change would alter.
- ansible: ``ansible-playbook --syntax-check``, then ``--check`` (the changed count of its PLAY RECAP).
- nagios: ``nagios4 -v`` on the main configuration file: errors fail it.
- salt, cfengine, generic: nothing to run here; said so in the record.

A validation is recorded per commit under the store (``hpcos config status`` shows it) and, like a
nightly run, reported to the tracker: one (test, outcome) per step, so a failure files a ticket and
the tracker's usual rules close it once the step passes again.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hpcos.config.git import GitError
from hpcos.config.repositories import Repository
from hpcos.core import runner
from hpcos.core.files import write_text_atomically
from hpcos.core.store_files import BadStoreFile, dataclass_from, read_json
from hpcos.results.model import RunResults, TestResult

log = logging.getLogger("hpcos.config")

TOOL_TIMEOUT = 600
DEFAULT_ENTRY = {"puppet": "manifests", "ansible": "site.yml", "nagios": "nagios.cfg"}
# This container (and some hardened hosts) hide /proc/1/environ even from root: Facter logs one
# such line per fact on every Puppet run, with no effect on the outcome.
FACTER_NOISE = re.compile(r"^Error: Facter: .*Permission denied.*$", re.MULTILINE)
OUTPUT_LIMIT = 20000  # characters of a tool's output kept in a record or a ticket


@dataclass
class Step:
    name: str  # puppet-parser-validate, puppet-apply-noop, ...
    command: str
    ok: bool
    output: str


@dataclass
class Validation:
    repository: str
    kind: str
    commit: str
    checked: str
    steps: list[Step] = field(default_factory=list)
    changes: int | None = None  # what the dry run would change; None when the kind has no dry run
    note: str = ""
    tested: str = ""  # promotion: the testing commit merged (``commit`` is the merge being checked)

    @property
    def ok(self) -> bool:
        return all(step.ok for step in self.steps)

    def failures(self) -> list[Step]:
        return [step for step in self.steps if not step.ok]

    def summary(self) -> str:
        if self.note and not self.steps:
            return self.note
        if not self.ok:
            return "failed: " + ", ".join(step.name for step in self.failures())
        return "valid" + (
            f", dry run: {self.changes} change(s)" if self.changes is not None else ""
        )


def environment_name(branch: str) -> str:
    """The Puppet environment r10k makes of a branch: ``hot-fix/x`` -> ``hot_fix_x``."""
    name = re.sub(r"[^a-z0-9_]", "_", branch.lower())
    return name if name and name[0].isalpha() else f"env_{name}"


def _clean(text: str) -> str:
    text = FACTER_NOISE.sub("", text)
    text = "\n".join(line for line in text.splitlines() if line.strip())
    return text[-OUTPUT_LIMIT:]


def _run(
    argv: list[str], name: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[Step, str]:
    done = runner.run(argv, timeout=TOOL_TIMEOUT, env=env, cwd=cwd)
    output = _clean(done.stdout + ("\n" + done.stderr if done.stderr else ""))
    if done.timed_out:
        output += f"\ntimed out after {TOOL_TIMEOUT} s"
    elif done.exit_code == 127 and not done.stdout:
        output = (
            f"{argv[0]}: not found on this host (install it where `hpcos config` runs)\n{output}"
        )
    return Step(
        name, shlex.join(argv), done.exit_code == 0 and not done.timed_out, output
    ), done.stdout


def _export(repo: Repository, commit: str, into: Path) -> None:
    """The commit's files in ``into`` (git archive: no work tree, nothing registered in the mirror)."""
    into.mkdir(parents=True)
    tar = into.parent / f".{into.name}.tar"
    repo.git.run("archive", "--format=tar", "-o", str(tar), commit)
    done = runner.run(["tar", "-x", "-f", str(tar), "-C", str(into)], timeout=TOOL_TIMEOUT)
    tar.unlink()
    if done.exit_code != 0:
        raise GitError(f"cannot unpack {commit} of {repo.name}: {done.stderr.strip()}")


def validate(
    repo: Repository, commit: str, production: str | None = None, tested: str = ""
) -> Validation:
    """Validate ``commit`` as the repository's testing branch (``production``: the production branch's
    commit, laid out beside it as r10k would; ``tested``: the testing commit a promotion merges)."""
    kind = repo.spec.kind
    result = Validation(
        repo.name, kind, commit, datetime.now(UTC).isoformat(timespec="seconds"), tested=tested
    )
    entry = repo.spec.entry or DEFAULT_ENTRY.get(kind)
    if entry is None:
        result.note = f"kind {kind}: no validator runs here; the test cluster's run is the check"
        return result
    with tempfile.TemporaryDirectory(prefix=f"hpcos-config-{repo.name}-") as work:
        work_dir = Path(work)
        environments = work_dir / "environments"
        testing_env = environment_name(repo.spec.testing)
        _export(repo, commit, environments / testing_env)
        if production is not None and kind == "puppet":
            production_env = environment_name(repo.spec.production)
            if production_env == testing_env:
                production_env += "_production"
            _export(repo, production, environments / production_env)
        checkout = environments / testing_env
        if not (checkout / entry).exists():
            result.steps.append(
                Step(f"{kind}-entry", entry, False, f"{entry}: not in commit {commit[:12]}")
            )
            return result
        if kind == "puppet":
            _puppet(result, checkout, entry, environments, testing_env, work_dir)
        elif kind == "ansible":
            _ansible(result, checkout, entry, work_dir)
        elif kind == "nagios":
            _nagios(result, checkout, entry)
    return result


def _puppet(
    result: Validation, checkout: Path, entry: str, environments: Path, env: str, work: Path
) -> None:
    manifests = sorted(str(p) for p in checkout.rglob("*.pp"))
    if not manifests:
        result.steps.append(
            Step(
                "puppet-parser-validate",
                "puppet parser validate",
                False,
                f"no *.pp manifest in the {env} environment",
            )
        )
        return
    # Private Puppet directories: nothing of the host's /etc/puppetlabs is read or written.
    state = work / "puppet"
    dirs = [f"--{d}dir={state / d}" for d in ("conf", "var", "code", "log", "run")]
    step, _ = _run(
        [
            "puppet",
            "parser",
            "validate",
            "--color=false",
            *dirs,
            f"--environmentpath={environments}",
            f"--environment={env}",
            *manifests,
        ],
        "puppet-parser-validate",
    )
    result.steps.append(step)
    if not step.ok:
        return
    step, stdout = _run(
        [
            "puppet",
            "apply",
            "--noop",
            "--summarize",
            "--color=false",
            *dirs,
            f"--environmentpath={environments}",
            f"--environment={env}",
            str(checkout / entry),
        ],
        "puppet-apply-noop",
    )
    errors = [line for line in step.output.splitlines() if line.startswith("Error:")]
    if errors:  # puppet apply may exit 0 with errors logged (a failed resource in noop)
        step.ok = False
    result.steps.append(step)
    match = re.search(r"^\s*Out of sync:\s*(\d+)", stdout, re.MULTILINE)
    result.changes = int(match[1]) if match else 0 if step.ok else None


def _ansible(result: Validation, checkout: Path, entry: str, work: Path) -> None:
    env = {
        "ANSIBLE_LOCAL_TEMP": str(work / "atmp"),
        "ANSIBLE_REMOTE_TEMP": str(work / "rtmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOME": str(work / "ansible"),
    }
    step, _ = _run(
        ["ansible-playbook", "--syntax-check", "-i", "localhost,", entry],
        "ansible-syntax-check",
        env=env,
        cwd=checkout,
    )
    result.steps.append(step)
    if not step.ok:
        return
    step, stdout = _run(
        ["ansible-playbook", "--check", "-i", "localhost,", "-c", "local", entry],
        "ansible-check",
        env=env,
        cwd=checkout,
    )
    result.steps.append(step)
    # The PLAY RECAP lines of the default callback (ansible-core alone has no JSON callback).
    recap = re.findall(r"^\S+\s*:\s*ok=\d+\s+changed=(\d+)", stdout, re.MULTILINE)
    result.changes = sum(int(n) for n in recap) if recap else None


def _nagios(result: Validation, checkout: Path, entry: str) -> None:
    tool = shutil.which("nagios4") or "nagios4"
    step, stdout = _run([tool, "-v", str(checkout / entry)], "nagios-verify")
    errors = re.search(r"Total Errors:\s*(\d+)", stdout)
    if errors and int(errors[1]):
        step.ok = False
    result.steps.append(step)


def record(repo: Repository, validation: Validation) -> Path:
    repo.validations.mkdir(parents=True, exist_ok=True)
    path = repo.validations / f"{validation.commit}.json"
    write_text_atomically(path, json.dumps(asdict(validation), indent=2, sort_keys=True))
    return path


def recorded(repo: Repository, commit: str) -> Validation | None:
    """The validation recorded for ``commit``, if any."""
    path = repo.validations / f"{commit}.json"
    try:
        # Read as untrusted: a record hpcos did not write is no validation (the gate then refuses).
        validation = dataclass_from(
            Validation, read_json(path, what="validation record"), str(path)
        )
    except (OSError, BadStoreFile):
        return None
    validation.steps = [dataclass_from(Step, s, str(path)) for s in validation.steps]
    return validation


def as_run(validation: Validation) -> RunResults:
    """The validation in the results format, so tickets are filed exactly as for a nightly run."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    results = [
        TestResult(
            test_id=f"config/{validation.repository}::{step.name}",
            node=None,
            outcome="passed" if step.ok else "failed",
            failure_class=None if step.ok else "error",
            message="" if step.ok else step.output,
            command=step.command,
            rerun=f"hpcos config validate {validation.repository}",
        )
        for step in validation.steps
    ]
    return RunResults(
        run_id=f"config-{validation.repository}-{validation.commit[:12]}-{now}",
        cluster=f"config:{validation.repository}",
        started=validation.checked,
        finished=now,
        versions={validation.repository: validation.tested or validation.commit},
        results=results,
    )


def file_tickets(validation: Validation, tracker, store_root: Path, environ=None) -> str:
    """Report a validation to the site's tracker like a nightly run (``tracker``: site.yaml's settings);
    returns the one-line summary of what was done."""
    from hpcos.tickets.session import TicketSession, summarise

    if not validation.steps:
        return "nothing to file"
    with TicketSession(tracker, store_root, environ) as session:
        _, outcome = session.file(as_run(validation))
    return summarise(outcome)
