"""Every ``hpcos ...`` the generated Jenkins jobs run is a command line the real ``hpcos`` accepts.

The sample site's jobs are rendered with ``hpcos jobs render``; each shell builder and each
ScriptTrigger script is read back from the XML, Jenkins' parameters are given sample values, and
every ``hpcos`` invocation in them goes through the same parser and pass-through rule as
``hpcos.cli.main``.  What the arguments name (packages, targets, overlays, environments, the cluster
profile) must exist in the site.  So a renamed subcommand or option, or a job template that drifts
from the specs, breaks this test instead of a night in production.
"""

from __future__ import annotations

import argparse
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO

from hpcos.cli import main, parse
from hpcos.site import Site
from hpcos.site.specs import SpecSet, load_specs

SPECS = REPO / "overlay_specs"
# Sample values for what Jenkins or the script itself sets before a command runs.
JENKINS_VARIABLES = {
    "REASON": "RHSA-2026:0001 kernel privilege escalation",
    "HPCOS_TESTING_SNAPSHOT": "20260101T010000Z-testing-abcdef",
}
SHELL_KEYWORDS = {"if", "then", "else", "elif", "do", "!", "time"}
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def substitute(script: str) -> str:
    """Known variables get their sample values ("$VAR" with its quotes becomes one quoted word)."""

    def value(match: re.Match) -> str:
        name = match["braced"] or match["name"]
        return shlex.quote(JENKINS_VARIABLES[name]) if name in JENKINS_VARIABLES else match[0]

    return re.sub(r'"?\$(?:\{(?P<braced>\w+)\}|(?P<name>[A-Za-z_]\w*))"?', value, script)


def hpcos_invocations(script: str) -> list[list[str]]:
    """The argument lists of every ``hpcos`` command in a shell script, ``$(...)`` included."""
    found = []
    for line in substitute(script).replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if not token or not set(token) <= set("();<>|&"):  # "" is an (empty) argument
                command.append(token)
                continue
            while command and (command[0] in SHELL_KEYWORDS or ASSIGNMENT.match(command[0])):
                command.pop(0)
            if command[:1] == ["hpcos"]:
                assert not any("$" in word for word in command), (
                    f"no sample value for a variable in {line!r}"
                )
                found.append(command[1:])
            command = []
    return found


def parse_like_main(argv: list[str], capsys) -> argparse.Namespace:
    """``hpcos.cli.main``'s parsing, without running the command."""
    try:
        args = parse(argv)
    except SystemExit:
        pytest.fail(
            f"`hpcos {shlex.join(argv)}` is refused by the hpcos parser: {capsys.readouterr().err.strip()}",
            pytrace=False,
        )
    assert callable(getattr(args, "func", None)), (
        f"`hpcos {shlex.join(argv)}` names no runnable command"
    )
    return args


def check_names(args: argparse.Namespace, spec_set: SpecSet) -> None:
    """What a job's command names exists in the site it was rendered from."""
    site = spec_set.site
    action = getattr(args, "repo_command", None)
    if args.command == "build":
        assert args.package in spec_set.packages, args
        assert args.target in spec_set.packages[args.package].targets, args
    elif action in ("publish", "fastpath"):
        assert args.overlay in site.overlays, args
    elif action == "promote":
        assert site.environments[args.dest].source == args.source, args
    elif action == "status":
        assert args.env in site.environments, args
    elif args.command == "config":
        assert set(args.repositories) <= set(site.config.repositories), args
    elif args.command == "test":
        # A job's workspace is a checkout of this repository: the profile path is relative to it.
        Site.from_options(specs=REPO / "overlay_specs").profile(
            str(REPO / args.cluster) if "/" in args.cluster else args.cluster, root=REPO
        )


def job_scripts(out: Path) -> dict[str, list[str]]:
    scripts = {}
    for config in sorted(out.rglob("config.xml")):
        root = ET.parse(config).getroot()
        texts = [e.text or "" for e in root.iter("command")]
        texts += [e.text or "" for e in root.iter("script")]
        scripts[str(config.parent.relative_to(out))] = texts
    return scripts


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[str]]:
    out = tmp_path_factory.mktemp("jobs")
    assert main(["--specs", str(SPECS), "jobs", "render", "-o", str(out)]) == 0
    return job_scripts(out)


def test_every_hpcos_command_in_the_jobs_is_accepted(rendered, capsys):
    spec_set = load_specs(SPECS)
    seen = set()
    for job, scripts in rendered.items():
        invocations = [argv for script in scripts for argv in hpcos_invocations(script)]
        if job.count("/"):  # every job (not the folder) runs hpcos
            assert invocations, f"{job} runs no hpcos command"
        for argv in invocations:
            args = parse_like_main(argv, capsys)
            check_names(args, spec_set)
            if args.command == "build" and args.check_upstream:
                seen.add("build --check-upstream")
            else:
                seen.add(f"repo {args.repo_command}" if args.command == "repo" else args.command)
    # The job set calls every step of the process; a template that stopped calling one shows here.
    assert seen >= {
        "build",
        "build --check-upstream",
        "repo sync",
        "repo publish",
        "repo promote",
        "repo status",
        "repo record-run",
        "repo fastpath",
        "test",
        "report",
        "config",
        "deploy",
        "outage",
    }, seen
    outage = {
        argv[1]
        for script in sum(rendered.values(), [])
        for argv in hpcos_invocations(script)
        if argv[0] == "outage"
    }
    assert outage == {"plan", "run", "report"}, outage
    config = {
        argv[1]
        for script in sum(rendered.values(), [])
        for argv in hpcos_invocations(script)
        if argv[0] == "config"
    }
    assert config == {"heads", "promote", "merge-back", "validate"}, config


def test_the_nightly_job_runs_the_documented_sequence(rendered):
    nightly = [
        argv
        for script in rendered["hpcos/nightly-integration-tests"]
        for argv in hpcos_invocations(script)
    ]
    assert [argv[:2] for argv in nightly] == [
        ["repo", "status"],
        ["config", "heads"],
        ["deploy", "testing"],
        ["test", "--cluster"],
        ["repo", "record-run"],
        ["repo", "status"],
        ["repo", "diff"],
        ["report", "results.json"],
        ["report", "results.json"],
    ]
    assert nightly[0] == ["repo", "status", "testing", "--id"]
    # The configuration heads are taken before the tests run, and recorded with the run.
    assert nightly[1] == ["config", "heads", "-o", "config-heads.json"]
    # The deployment puts the very snapshot the tests are told about on the same cluster profile.
    assert (
        nightly[2][nightly[2].index("--snapshot") + 1]
        == JENKINS_VARIABLES["HPCOS_TESTING_SNAPSHOT"]
    )
    assert (
        nightly[2][nightly[2].index("--cluster") + 1]
        == nightly[3][nightly[3].index("--cluster") + 1]
    )
    assert {"--junitxml", "--results"} <= set(nightly[3])
    assert nightly[4] == [
        "repo",
        "record-run",
        "results.json",
        "--config-heads",
        "config-heads.json",
    ]
    assert nightly[6] == ["repo", "diff", "production", "testing", "--json"]
    assert nightly[7][-2:] == ["--package-changes", "package-changes.json"]


def test_gated_promotion_passes_the_reason_as_one_argument(rendered, capsys):
    promote = [
        argv
        for script in rendered["hpcos/promote-testing-production"]
        for argv in hpcos_invocations(script)
    ]
    # The sample site has configuration repositories: they move with the packages.
    assert ["repo", "promote", "testing", "production", "--with-config"] in promote
    forced = next(argv for argv in promote if "--force" in argv)
    assert parse_like_main(forced, capsys).reason == JENKINS_VARIABLES["REASON"]


def test_the_checker_refuses_a_renamed_option(capsys):
    """The check can fail: a command line the parser does not know is reported, with argparse's words."""
    argv = hpcos_invocations(
        'hpcos repo promote testing production \\\n  --froce --reason "$REASON"'
    )[0]
    with pytest.raises(pytest.fail.Exception, match="unrecognized arguments: --froce"):
        parse_like_main(argv, capsys)
    with pytest.raises(pytest.fail.Exception, match="invalid choice: 'promot'"):
        parse_like_main(["repo", "promot", "daily", "testing"], capsys)


def test_reading_shell_lines():
    assert hpcos_invocations(
        'X=$(hpcos repo status testing --id) && hpcos repo fastpath k --reason ""'
    ) == [["repo", "status", "testing", "--id"], ["repo", "fastpath", "k", "--reason", ""]]
    script = 'if [ "$FORCE" = true ]; then\n  hpcos repo promote a b --force --reason "$REASON"\nfi'
    assert hpcos_invocations(script) == [
        ["repo", "promote", "a", "b", "--force", "--reason", JENKINS_VARIABLES["REASON"]]
    ]
