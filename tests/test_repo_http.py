"""Mirroring from an http:// upstream and serving the environment pointers over HTTP.

The web server is Python's http.server on 127.0.0.1 at a free port: like nginx and httpd with
FollowSymLinks it follows symlinks, which is all the pointers need (docs/repositories.md has the
nginx and httpd configuration).  dnf reposync and dnf repoquery are real.
"""

from __future__ import annotations

import functools
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import require_tool
from support.rpm_repo_fixtures import (
    BASE_DAY2,
    HPC_OVERLAY,
    KERNEL_V1,
    RpmFactory,
    make_site,
    nevras,
    repoquery,
)
from test_repo_lifecycle import (  # noqa: F401
    BASE,
    DAILY1,
    DAILY2,
    HPC,
    KERNEL,
    hpcos,
    rpm_factory,
    synced_and_published,
)


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture
def http_root(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path``; stopped at teardown."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_sync_from_http_and_serve_pointers_over_http(rpm_factory: RpmFactory, tmp_path, http_root):  # noqa: F811
    site = synced_and_published(
        make_site(rpm_factory, tmp_path, upstream_url=f"{http_root}/upstream")
    )
    assert hpcos(site, "promote", "daily", "testing") == 0
    served = f"{http_root}/store/environments"
    for repo, expected in DAILY1.items():
        assert repoquery(f"{served}/testing/{repo}", tmp_path / "c1" / repo) == expected
    assert repoquery(f"{served}/testing/{HPC}", tmp_path / "c2") == nevras(HPC_OVERLAY)
    assert repoquery(f"{served}/testing/{KERNEL}", tmp_path / "c3") == nevras(KERNEL_V1)

    # The next day's sync fetches upstream's new metadata (no stale dnf cache) and moves daily only.
    site.set_upstream("base", BASE_DAY2)
    assert hpcos(site, "sync") == 0
    assert repoquery(f"{served}/daily/{BASE}", tmp_path / "c4") == DAILY2[BASE]
    assert repoquery(f"{served}/testing/{BASE}", tmp_path / "c5") == DAILY1[BASE]


def test_sync_refuses_a_package_that_fails_its_checksum(rpm_factory, tmp_path, capsys):  # noqa: F811
    site = make_site(rpm_factory, tmp_path)
    assert hpcos(site, "sync") == 0
    before = (site.store / "environments" / "daily").readlink()
    site.set_upstream("base", BASE_DAY2)
    # The package changes after createrepo_c listed it: what a broken or tampered mirror serves.
    tampered = site.upstream / "base" / "9" / "x86_64" / "Packages" / "delta-2.0-1.noarch.rpm"
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    capsys.readouterr()
    assert hpcos(site, "sync") == 2
    err = capsys.readouterr().err
    assert (
        "delta-2.0-1.noarch.rpm" in err
        and "checksum doesn't match" in err
        and "Traceback" not in err
    ), err
    assert (site.store / "environments" / "daily").readlink() == before
    assert repoquery(site.env_url("daily", BASE), tmp_path / "cache") == DAILY1[BASE]
    assert not [p for p in (site.store / "snapshots").iterdir() if p.name.startswith(".tmp-")]


COMPS = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE comps PUBLIC "-//Red Hat, Inc.//DTD Comps info//EN" "comps.dtd">
<comps><group><id>hpc-tools</id><name>HPC tools</name><description>tools</description><default>false</default>
<uservisible>true</uservisible><packagelist><packagereq type="mandatory">alpha</packagereq></packagelist>
</group></comps>
"""
UPDATEINFO = """<?xml version="1.0" encoding="UTF-8"?>
<updates><update from="security@example.org" status="final" type="security" version="2.0">
<id>RLSA-2026:0001</id><title>Important: alpha security update</title><issued date="2026-11-25 00:00:00"/>
<severity>Important</severity><description>fix</description><pkglist><collection short="c"><name>c</name>
<package name="alpha" version="1.0" release="1" epoch="0" arch="noarch" src="alpha-1.0-1.src.rpm">
<filename>alpha-1.0-1.noarch.rpm</filename></package></collection></pkglist></update></updates>
"""


def test_sync_keeps_upstream_groups_and_errata(rpm_factory, tmp_path):  # noqa: F811
    site = make_site(rpm_factory, tmp_path)
    upstream = site.upstream / "base" / "9" / "x86_64"
    for name, text in (("comps.xml", COMPS), ("updateinfo.xml", UPDATEINFO)):
        (tmp_path / name).write_text(text)
        mdtype = "group" if name == "comps.xml" else "updateinfo"
        subprocess.run(
            [
                require_tool("modifyrepo_c", "createrepo-c"),
                f"--mdtype={mdtype}",
                str(tmp_path / name),
                str(upstream / "repodata"),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert hpcos(site, "sync") == 0
    dnf = [
        require_tool("dnf", "dnf"),
        "--setopt=reposdir=/dev/null",
        f"--setopt=cachedir={tmp_path / 'c'}",
        "--releasever=9",
        "-q",
        f"--repofrompath=d,{site.env_url('daily', BASE)}",
        "--repo",
        "d",
    ]
    group = subprocess.run(
        [*dnf, "group", "info", "hpc-tools"], capture_output=True, text=True, timeout=120
    )
    assert "HPC tools" in group.stdout and "alpha" in group.stdout, group.stderr
    advisory = subprocess.run(
        [*dnf, "repoquery", "--advisory", "RLSA-2026:0001"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert advisory.stdout.split() == ["alpha-0:1.0-1.noarch"], advisory.stderr
