"""Every way an administrator can get the overlay specs wrong, and the one line hpcos answers with.

Each case breaks one thing in a frozen copy of the sample site (tests/data/specs_site) and asserts the exact
``file:line: field: message`` line, so a message that loses its file, line or field fails here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hpcos.core.sourced_yaml import InvalidInput
from hpcos.site.specs import load_specs


@pytest.fixture
def specs(repo_root, tmp_path) -> Path:
    root = tmp_path / "overlay_specs"
    # A frozen copy of the sample site: these tests pin exact line numbers, which must not move
    # whenever the shipped sample is edited.
    shutil.copytree(repo_root / "tests" / "data" / "specs_site", root)
    return root


def edit(root: Path, file: str, old: str, new: str) -> None:
    path = root / file
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {file}"
    path.write_text(text.replace(old, new))


def errors(root: Path) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        load_specs(root)
    lines = [str(e) for e in caught.value.errors]
    assert str(caught.value) == "\n".join(lines)
    return lines


CASES = {
    # --- YAML itself
    "duplicate-key": (
        "mpich.yaml",
        "builder: rpmbuild\n",
        "builder: rpmbuild\nbuilder: mock\n",
        "overlay_specs/mpich.yaml:10: builder: key given twice (first on line 9)",
    ),
    "not-a-mapping": (
        "mpich.yaml",
        None,
        "- mpich\n- ucx\n",
        "overlay_specs/mpich.yaml:1: expected a mapping (key: value); found ['mpich', 'ucx']",
    ),
    # --- one file against its model
    "unknown-key-did-you-mean": (
        "mpich.yaml",
        "owner:",
        "ownr:",
        "overlay_specs/mpich.yaml:10: ownr: unknown key 'ownr'; did you mean 'owner'?",
    ),
    "unknown-key-lists-keys": (
        "site.yaml",
        "  keep_builds: 3",
        "  colour: blue",
        "overlay_specs/site.yaml:8: store.colour: unknown key 'colour'; "
        "expected one of: keep_builds, keep_snapshots, root",
    ),
    "missing-field": (
        "mpich.yaml",
        "owner: hpc-sysadmin@example.org\n",
        "",
        "overlay_specs/mpich.yaml:2: owner: required field is missing",
    ),
    "missing-nested-field": (
        "site.yaml",
        "  test_label: test-cluster\n",
        "",
        "overlay_specs/site.yaml:45: jenkins.test_label: required field is missing",
    ),
    "wrong-type-list": (
        "mpich.yaml",
        "targets: [el9-x86_64, el9-aarch64]",
        "targets: el9-x86_64",
        "overlay_specs/mpich.yaml:7: targets: expected a valid list; found 'el9-x86_64'",
    ),
    "wrong-type-int": (
        "site.yaml",
        "keep_snapshots: 14",
        "keep_snapshots: two weeks",
        "overlay_specs/site.yaml:7: store.keep_snapshots: expected a valid integer; "
        "found 'two weeks'",
    ),
    "wrong-type-bool": (
        "site.yaml",
        "fastpath: true",
        "fastpath: sometimes",
        "overlay_specs/site.yaml:36: overlays.kernel-overlay.fastpath: expected true or false; "
        "found 'sometimes'",
    ),
    "wrong-type-mapping": (
        "site.yaml",
        "  hpc-overlay:\n    description: OFED (rdma-core), UCX, Open MPI and "
        "MPICH rebuilt with site patches.\n",
        "  hpc-overlay: [ofed, mpi]\n",
        "overlay_specs/site.yaml:37: overlays.hpc-overlay: expected a mapping (key: value); "
        "found ['ofed', 'mpi']",
    ),
    "choice-did-you-mean": (
        "mpich.yaml",
        "builder: rpmbuild",
        "builder: rpmbiuld",
        "overlay_specs/mpich.yaml:9: builder: expected one of 'mock', 'rpmbuild'; "
        "found 'rpmbiuld'; did you mean 'rpmbuild'?",
    ),
    "arch-choice": (
        "site.yaml",
        "el9-aarch64: {release: 9, arch: aarch64,",
        "el9-aarch64: {release: 9, arch: arm64,",
        "overlay_specs/site.yaml:14: targets.el9-aarch64.arch: expected one of 'x86_64', 'aarch64', "
        "'ppc64le'; found 'arm64'; did you mean 'aarch64'?",
    ),
    "rpm-name": (
        "mpich.yaml",
        "name: mpich",
        "name: mpich 4",
        "overlay_specs/mpich.yaml:2: name: expected an RPM package name (letters, digits and . _ + -, "
        "not starting with a punctuation mark); found 'mpich 4'",
    ),
    "release-tag": (
        "mpich.yaml",
        "release_tag: .hpc1",
        "release_tag: hpc1",
        "overlay_specs/mpich.yaml:6: release_tag: expected a release tag: a dot, a letter, then "
        "letters, digits or _ (e.g. '.hpc1'); found 'hpc1'",
    ),
    "identifier": (
        "site.yaml",
        "  folder: hpcos",
        "  folder: 'HPC OS'",
        "overlay_specs/site.yaml:47: jenkins.folder: expected a name of letters, digits and _ . - "
        "starting with a letter; found 'HPC OS'",
    ),
    "no-tests": (
        "mpich.yaml",
        'tests: ["mpi and mpich", "rank_count and mpich"]',
        "tests: []",
        "overlay_specs/mpich.yaml:18: tests: expected at least 1 item; found []",
    ),
    "bad-test-expression": (
        "mpich.yaml",
        '"rank_count and mpich"]',
        '"mpi and (mpich"]',
        "overlay_specs/mpich.yaml:18: tests[1]: expected a pytest -k expression (expected "
        "right parenthesis; got end of input); found 'mpi and (mpich'",
    ),
    "short-reason": (
        "ucx.yaml",
        "    reason: >-\n      The module files export UCX_* for every MPI stack; programs "
        "that load UCX without a UCP worker\n      print one warning per rank, which users report as "
        "failures.\n",
        "    reason: noise\n",
        "overlay_specs/ucx.yaml:12: patches[0].reason: expected at least 10 characters; found 'noise'",
    ),
    "release-range": (
        "site.yaml",
        "el8-x86_64: {release: 8,",
        "el8-x86_64: {release: 88,",
        "overlay_specs/site.yaml:11: targets.el8-x86_64.release: expected less than or equal to 10; "
        "found 88",
    ),
    "mirror-url-scheme": (
        "site.yaml",
        "url: https://dl.fedoraproject.org",
        "url: ftp://dl.fedoraproject.org",
        "overlay_specs/site.yaml:25: mirrors.epel.url: expected a URL starting with http:// or "
        "https:// or file://; found 'ftp://dl.fedoraproject.org/pub/epel/{release}/Everything/"
        "{arch}/'",
    ),
    "jenkins-url-scheme": (
        "site.yaml",
        "url: https://jenkins.example.org/",
        "url: jenkins.example.org",
        "overlay_specs/site.yaml:46: jenkins.url: expected a URL starting with http:// or "
        "https://; found 'jenkins.example.org'",
    ),
    "poll-cron": (
        "kernel.yaml",
        'poll: "H */4 * * *"',
        'poll: "every 4 hours"',
        "overlay_specs/kernel.yaml:30: poll: expected a Jenkins cron spec: five fields like 'H 3 * * *' "
        "(digits, H, names and * / , - ( )), or @daily, @hourly, ...; found 'every 4 hours'",
    ),
    "sha256-format": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_url: https://www.mpich.org/static/downloads/4.2.3/mpich-4.2.3-1.src.rpm\n"
        "  sha256: 1234abcd\n",
        "overlay_specs/mpich.yaml:6: upstream.sha256: expected a SHA-256 digest (64 lower-case hex "
        "digits); found '1234abcd'",
    ),
    "two-upstream-sources": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  mirror: appstream\n  srpm_url: https://www.mpich.org/mpich-4.2.3-1.src.rpm\n",
        "overlay_specs/mpich.yaml:4: upstream: expected exactly one of mirror, srpm_url, "
        "srpm_path; found mirror, srpm_url",
    ),
    "no-upstream-source": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  gpgkey: https://www.mpich.org/key.asc\n",
        "overlay_specs/mpich.yaml:4: upstream: expected exactly one of mirror, srpm_url, "
        "srpm_path; found none",
    ),
    # --- across files: the package against the site and the specs tree
    "unknown-overlay": (
        "mpich.yaml",
        "overlay: hpc-overlay",
        "overlay: hpc-overlai",
        "overlay_specs/mpich.yaml:3: overlay: expected one of: hpc-overlay, kernel-overlay; "
        "found 'hpc-overlai'; did you mean 'hpc-overlay'?",
    ),
    "unknown-mirror": (
        "mpich.yaml",
        "  mirror: appstream",
        "  mirror: powertools",
        "overlay_specs/mpich.yaml:5: upstream.mirror: expected one of: appstream, baseos, epel; "
        "found 'powertools'",
    ),
    "unknown-target": (
        "mpich.yaml",
        "targets: [el9-x86_64, el9-aarch64]",
        "targets: [el9-x86_64, el9-arm64]",
        "overlay_specs/mpich.yaml:7: targets[1]: expected one of: el8-aarch64, el8-x86_64, "
        "el9-aarch64, el9-x86_64; found 'el9-arm64'; did you mean 'el9-aarch64'?",
    ),
    "glob-with-space": (
        "site.yaml",
        '"kmod-nvidia*"]',
        '"kmod nvidia*"]',
        "overlay_specs/site.yaml:31: exclude[2]: expected a glob of RPM names (letters, digits, "
        ". _ + - and the wildcards * ? [ ]); found 'kmod nvidia*'",
    ),
    "duplicate-target": (
        "mpich.yaml",
        "targets: [el9-x86_64, el9-aarch64]",
        "targets: [el9-x86_64, el9-x86_64]",
        "overlay_specs/mpich.yaml:7: targets[1]: expected each target once; found 'el9-x86_64' "
        "again",
    ),
    "mock-config-for-other-target": (
        "kernel.yaml",
        "  el9-aarch64: site-kernel-9-aarch64",
        "  el7-x86_64: site-kernel-7-x86_64",
        "overlay_specs/kernel.yaml:13: mock_config.el7-x86_64: expected one of the "
        "package's targets: el8-x86_64, el8-aarch64, el9-x86_64, el9-aarch64; found "
        "'el7-x86_64'",
    ),
    "patch-missing": (
        "mpich.yaml",
        "  - file: 0001-hydra-run-ssh-with-BatchMode-yes.patch",
        "  - file: 0001-hydra-ssh-batchmode.patch",
        "overlay_specs/mpich.yaml:12: patches[0].file: expected an existing file; found "
        "'0001-hydra-ssh-batchmode.patch', but overlay_specs/patches/mpich/"
        "0001-hydra-ssh-batchmode.patch does not exist",
    ),
    "patch-outside-tree": (
        "mpich.yaml",
        "  - file: 0001-hydra-run-ssh-with-BatchMode-yes.patch",
        "  - file: ../../../etc/passwd",
        "overlay_specs/mpich.yaml:12: patches[0].file: expected a path inside the specs "
        "directory {root}; found '../../../etc/passwd', which leads outside",
    ),
    "patch-not-a-diff": (
        "mpich.yaml",
        "  - file: 0001-hydra-run-ssh-with-BatchMode-yes.patch",
        "  - file: ../../site.yaml",
        "overlay_specs/mpich.yaml:12: patches[0].file: expected a unified diff (git format-patch "
        "or diff -u); found '../../site.yaml', which has no ---/+++/@@ lines",
    ),
    "patch-twice": (
        "kernel.yaml",
        "  - file: 0002-IB-ipoib-larger-default-send-and-receive-rings.patch",
        "  - file: 0001-RDMA-ucma-raise-the-default-max_backlog-to-4096.patch",
        "overlay_specs/kernel.yaml:21: patches[1].file: expected each patch once; found "
        "'0001-RDMA-ucma-raise-the-default-max_backlog-to-4096.patch' again (also patches[0])",
    ),
    "srpm-name-without-mirror": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_url: https://www.mpich.org/mpich-4.2.3-1.src.rpm\n  srpm_name: mpich4\n",
        "overlay_specs/mpich.yaml:6: upstream.srpm_name: expected only with upstream.mirror "
        "(it names the source package there); found it with srpm_url",
    ),
    "sha256-with-mirror": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  mirror: appstream\n  sha256: " + "ab" * 32 + "\n",
        "overlay_specs/mpich.yaml:6: upstream.sha256: expected only with srpm_url or srpm_path (a "
        "mirror's packages are checked by their signature, see gpgkey); found it with mirror",
    ),
    "srpm-url-placeholder": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_url: https://www.mpich.org/el{relase}/mpich-4.2.3-1.src.rpm\n",
        "overlay_specs/mpich.yaml:5: upstream.srpm_url: expected only the placeholders "
        "{release}, {arch}, {target}; found {relase}",
    ),
    "unbalanced-placeholder": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_url: https://www.mpich.org/el{release/mpich-4.2.3-1.src.rpm\n",
        "overlay_specs/mpich.yaml:5: upstream.srpm_url: expected text with only the "
        "placeholders {release}, {arch}, {target} (expected '}' before end of string); found "
        "'https://www.mpich.org/el{release/mpich-4.2.3-1.src.rpm'",
    ),
    "mirror-url-placeholder": (
        "site.yaml",
        "AppStream/{arch}/os/",
        "AppStream/{basearch}/os/",
        "overlay_specs/site.yaml:22: mirrors.appstream.url: expected only the placeholders "
        "{release}, {arch}, {target}; found {basearch}",
    ),
    "srpm-path-missing": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_path: srpms/el{release}/mpich.src.rpm\n",
        "overlay_specs/mpich.yaml:5: upstream.srpm_path: expected an existing file; found "
        "'srpms/el{release}/mpich.src.rpm', but overlay_specs/srpms/el9/mpich.src.rpm does not "
        "exist",
    ),
    "srpm-path-outside": (
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_path: ../../mpich.src.rpm\n",
        "overlay_specs/mpich.yaml:5: upstream.srpm_path: expected a path inside the specs "
        "directory {root}; found '../../mpich.src.rpm', which leads outside",
    ),
    "replaces-misses-own-name": (
        "mpich.yaml",
        'replaces: ["mpich", "mpich-*", "python3-mpich"]',
        'replaces: ["mpich-devel"]',
        "overlay_specs/mpich.yaml:17: replaces: expected globs that cover the package's own "
        "name 'mpich' (else the base mirror keeps shipping it beside the overlay's build); "
        "found ['mpich-devel']",
    ),
    "replaces-everything": (
        "mpich.yaml",
        'replaces: ["mpich", "mpich-*", "python3-mpich"]',
        'replaces: ["mpich", "*"]',
        "overlay_specs/mpich.yaml:17: replaces[1]: expected a glob naming some packages (it "
        "would leave bash, glibc and systemd out of the mirror); found '*'",
    ),
    "site-exclude-everything": (
        "site.yaml",
        '"kmod-nvidia*"]',
        '"kmod-nvidia*", "*"]',
        "overlay_specs/site.yaml:31: exclude[3]: expected a glob naming some packages (it "
        "would leave bash, glibc and systemd out of the mirror); found '*'",
    ),
    # --- the site's own consistency
    "environment-unknown-source": (
        "site.yaml",
        "testing: {source: daily,",
        "testing: {source: dialy,",
        "overlay_specs/site.yaml:42: environments.testing.source: expected one of: daily, "
        "production, testing; found 'dialy'; did you mean 'daily'?",
    ),
    "environment-gate-without-source": (
        "site.yaml",
        "daily: {schedule:",
        "daily: {gate: nightly, schedule:",
        "overlay_specs/site.yaml:41: environments.daily.gate: expected a source "
        "environment for a nightly gate (the gate tests the source's snapshot); "
        "found no source",
    ),
    "environment-second-root": (
        "site.yaml",
        "production: {source: testing, gate: nightly}",
        "production: {schedule: '@daily'}",
        "overlay_specs/site.yaml:43: environments.production: expected a source: only one "
        "environment is filled by the mirror sync ('daily'), every other one is promoted "
        "from another; found none",
    ),
    "environment-itself": (
        "site.yaml",
        "production: {source: testing,",
        "production: {source: production,",
        "overlay_specs/site.yaml:43: environments.production.source: expected another "
        "environment; found 'production' itself",
    ),
    "environment-cycle": (
        "site.yaml",
        "daily: {schedule:",
        "daily: {source: production, schedule:",
        "overlay_specs/site.yaml:41: environments.daily.source: expected a chain that starts at "
        "the mirrored environment; found a cycle: daily <- production <- testing <- daily",
    ),
    "target-name-release": (
        "site.yaml",
        "el8-aarch64: {release: 8,",
        "el8-aarch64: {release: 9,",
        "overlay_specs/site.yaml:12: targets.el8-aarch64.release: expected 8, as the target's "
        "name 'el8-aarch64' says; found 9",
    ),
    "target-name-arch": (
        "site.yaml",
        "el9-x86_64: {release: 9, arch: x86_64,",
        "el9-x86_64: {release: 9, arch: aarch64,",
        "overlay_specs/site.yaml:13: targets.el9-x86_64.arch: expected 'x86_64', as the target's "
        "name 'el9-x86_64' says; found 'aarch64'",
    ),
    # --- credentials: named, with the way to give them, never echoed
    "jenkins-token": (
        "site.yaml",
        "  test_label: test-cluster\n",
        "  test_label: test-cluster\n  token: 11c0ffee42deadbeef\n",
        "overlay_specs/site.yaml:50: jenkins.token: credentials do not belong in "
        "overlay_specs/site.yaml; give them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the "
        "environment, or as a `machine` entry for the Jenkins host in ~/.netrc",
    ),
    "jenkins-user": (
        "site.yaml",
        "  folder: hpcos\n",
        "  folder: hpcos\n  user: jenkins-bot\n",
        "overlay_specs/site.yaml:48: jenkins.user: credentials do not belong in overlay_specs/site.yaml; "
        "give them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the environment, or as a `machine` "
        "entry for the Jenkins host in ~/.netrc",
    ),
    "tracker-password": (
        "site.yaml",
        "  backend: local\n",
        "  backend: local\n  password: hunter2-s3cret\n",
        "overlay_specs/site.yaml:53: tracker.password: credentials do not belong in "
        "overlay_specs/site.yaml; give them as HPCOS_TRACKER_USER and HPCOS_TRACKER_PASSWORD (or "
        "HPCOS_TRACKER_TOKEN) in the environment, or as a `machine` entry for the tracker host in "
        "~/.netrc",
    ),
    "tracker-api-key": (
        "site.yaml",
        "  backend: local\n",
        "  backend: local\n  api_key: 9f8e7d6c5b4a\n",
        "overlay_specs/site.yaml:53: tracker.api_key: credentials do not belong in "
        "overlay_specs/site.yaml; give them as HPCOS_TRACKER_USER and HPCOS_TRACKER_PASSWORD (or "
        "HPCOS_TRACKER_TOKEN) in the environment, or as a `machine` entry for the tracker host in "
        "~/.netrc",
    ),
    "mirror-password": (
        "site.yaml",
        "    # EPEL's own MPI builds",
        "    password: s3cret-mirror-pw\n    # EPEL's",
        "overlay_specs/site.yaml:27: mirrors.epel.password: credentials do not belong in "
        "overlay_specs/site.yaml; give them as a `machine` entry for that host in ~/.netrc",
    ),
    "gpg-key-is-no-secret": (
        "site.yaml",
        "    gpgkey: https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL",
        "    key: https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL",
        "overlay_specs/site.yaml:26: mirrors.epel.key: unknown key 'key'; did you mean 'gpgkey'?",
    ),
    "url-with-password": (
        "site.yaml",
        "url: https://jenkins.example.org/",
        "url: https://admin:s3cret-in-url@jenkins.example.org/",
        "overlay_specs/site.yaml:46: jenkins.url: URL contains a user name and password; give "
        "them as HPCOS_JENKINS_USER and HPCOS_JENKINS_TOKEN in the environment, or as a `machine` "
        "entry for the Jenkins host in ~/.netrc",
    ),
}

SECRETS = (
    "11c0ffee42deadbeef",
    "hunter2-s3cret",
    "9f8e7d6c5b4a",
    "s3cret-mirror-pw",
    "s3cret-in-url",
)


@pytest.mark.parametrize("file, old, new, expected", CASES.values(), ids=CASES.keys())
def test_error_names_file_line_and_field(specs, file, old, new, expected):
    if old is None:
        (specs / file).write_text(new)
    else:
        edit(specs, file, old, new)
    found = errors(specs)
    assert expected.replace("{root}", str(specs)) in found
    assert len(found) == 1, found
    for secret in SECRETS:
        assert secret not in "\n".join(found)


def test_yaml_syntax_error_names_where_the_construct_began(specs):
    edit(
        specs,
        "mpich.yaml",
        "targets: [el9-x86_64, el9-aarch64]",
        "targets: [el9-x86_64, el9-aarch64",
    )
    [found] = errors(specs)
    # The problem's wording is libyaml's or PyYAML's, whichever is installed; the places are ours.
    assert found.startswith("overlay_specs/mpich.yaml:9: YAML syntax error: ")
    assert "expected ',' or ']'" in found
    assert found.endswith("(while parsing a flow sequence started on line 7)")


def test_credentials_are_reported_even_when_other_fields_are_wrong(specs):
    """The secret is taken out before validation, so no other message can echo it either."""
    edit(
        specs,
        "site.yaml",
        "jenkins:\n  url: https://jenkins.example.org/\n",
        "jenkins:\n  url: 42\n  password: 0bvious-secret\n",
    )
    found = "\n".join(errors(specs))
    assert "overlay_specs/site.yaml:47: jenkins.password: credentials do not belong" in found
    assert "overlay_specs/site.yaml:46: jenkins.url: expected a valid string; found 42" in found
    assert "0bvious-secret" not in found


def test_a_declared_field_is_not_taken_for_a_credential(specs):
    """``user`` is only a credential where the model does not declare it (an ssh login user is fine)."""
    from pydantic import BaseModel

    from hpcos.core import sourced_yaml

    class Ssh(BaseModel):
        user: str
        password: str | None = None

    doc = sourced_yaml.loads("user: hpcadmin\npassword: pw\n", "profile.yaml")
    found = sourced_yaml.strip_credentials(Ssh, doc, lambda loc: "use ~/.netrc")
    assert found == []
    assert doc.data == {"user": "hpcadmin", "password": "pw"}


def test_every_error_of_every_file_is_reported(specs):
    """A broken site.yaml does not hide the packages' errors, nor one package another's."""
    edit(specs, "site.yaml", "keep_snapshots: 14", "keep_snapshots: many")
    edit(specs, "mpich.yaml", "overlay: hpc-overlay", "overlay: hpc")
    edit(specs, "mpich.yaml", "builder: rpmbuild", "builder: make")
    edit(specs, "ucx.yaml", "owner:", "owners:")
    edit(specs, "kernel.yaml", "release_tag: .hpc1", "release_tag: hpc")
    found = errors(specs)
    assert [line.split(":")[0:2] for line in found] == [
        ["overlay_specs/kernel.yaml", "7"],
        ["overlay_specs/mpich.yaml", "3"],
        ["overlay_specs/mpich.yaml", "9"],
        ["overlay_specs/site.yaml", "7"],
        ["overlay_specs/ucx.yaml", "9"],
    ]


def test_a_syntax_error_in_site_does_not_flood_packages_with_unknown_names(specs):
    edit(specs, "site.yaml", "name: emsl-cascade", "name: [emsl-cascade")
    found = errors(specs)
    assert len(found) == 1 and found[0].startswith("overlay_specs/site.yaml:4: YAML syntax error")


def test_a_field_the_model_rejected_is_not_reported_again_by_cross_checks(specs):
    edit(
        specs,
        "mpich.yaml",
        "targets: [el9-x86_64, el9-aarch64]",
        "targets: [el9-x86_64, 'el9 aarch64']",
    )
    found = errors(specs)
    assert found == [
        "overlay_specs/mpich.yaml:7: targets[1]: expected one of: el8-aarch64, el8-x86_64, "
        "el9-aarch64, el9-x86_64; found 'el9 aarch64'; did you mean 'el9-aarch64'?"
    ]


def test_duplicate_package_name(specs):
    """The usual way: copy a spec to start a new one and forget to change its name."""
    shutil.copy(specs / "mpich.yaml", specs / "mpich4.yaml")
    assert errors(specs) == [
        "overlay_specs/mpich4.yaml:2: name: expected a package name not used before; found "
        "'mpich', already defined in overlay_specs/mpich.yaml"
    ]


def test_unreadable_package_file(specs):
    (specs / "ghost.yaml").symlink_to("nowhere.yaml")
    assert errors(specs) == ["overlay_specs/ghost.yaml: cannot read: No such file or directory"]


def test_site_without_overlays_says_so(specs):
    for package in ("kernel", "rdma-core", "ucx", "openmpi"):
        (specs / f"{package}.yaml").unlink()
    edit(specs, "site.yaml", "overlays:\n", "overlays: {}\nunused:\n")
    found = errors(specs)
    assert (
        "overlay_specs/mpich.yaml:3: overlay: expected a name defined in site.yaml (none are); found "
        "'hpc-overlay'" in found
    )


def test_yml_files_are_not_silently_ignored(specs):
    (specs / "mpich.yaml").rename(specs / "mpich.yml")
    assert errors(specs) == [
        "overlay_specs/mpich.yml: not read: package specs are named NAME.yaml, not .yml"
    ]


def test_missing_site_file(specs):
    (specs / "site.yaml").unlink()
    assert errors(specs) == [f"{specs}/site.yaml: site file not found"]


def test_srpm_path_that_exists_is_accepted(specs):
    srpms = specs / "srpms"
    for release in (9,):
        (srpms / f"el{release}").mkdir(parents=True)
        (srpms / f"el{release}" / "mpich.src.rpm").write_bytes(b"\xed\xab\xee\xdb")
    edit(
        specs,
        "mpich.yaml",
        "  mirror: appstream\n",
        "  srpm_path: srpms/el{release}/mpich.src.rpm\n",
    )
    spec_set = load_specs(specs)
    assert spec_set.packages["mpich"].upstream.srpm_path == "srpms/el{release}/mpich.src.rpm"
