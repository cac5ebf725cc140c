"""The cycle of ``hpcos demo`` on the shipped configuration (overlay_specs/ and the example profiles),
through the same code the demo runs (hpcos.demo.cycle), asserted on its outcome: the shipped patches
apply to the upstream sources and build, the overlays are published signed, testing gets them, and
production stays shut until a nightly run proves the snapshot."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import REPO, require_tool

from hpcos.demo.cycle import run_cycle
from hpcos.site.specs import load_specs


def test_the_demo_cycle_on_the_shipped_files(tmp_path: Path):
    for tool, package in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c"), ("dnf", "dnf"),
                          ("gpg", "gnupg"), ("rpmsign", "rpm")):
        require_tool(tool, package)
    lines: list[str] = []
    cycle = run_cycle(tmp_path / "demo", REPO, say=lines.append)

    assert [p.name for p in cycle.phases] == ["upstream distribution", "site", "sync", "overlay rebuilds",
                                              "publish and sign", "promote daily -> testing", "production gate"]
    assert json.loads((cycle.root / "phases.json").read_text())[0]["name"] == "upstream distribution"
    assert any(line.startswith("   mock: not packaged for Debian") for line in lines), lines
    # Every shipped package was rebuilt from the upstream SRPM with every shipped patch, and testing serves it.
    shipped = load_specs(REPO / "overlay_specs")
    served = {p.name: p for p in (cycle.store / "environments" / "testing").glob("*-el9-x86_64/Packages/*.rpm")}
    for package in shipped.packages.values():
        [built] = [p for name, p in served.items() if name.startswith(f"{package.name}-") and ".hpc1" in name]
        changelog = subprocess.run(["rpm", "-qp", "--qf", "[%{CHANGELOGTEXT}\n]", str(built)], capture_output=True,
                                   text=True, timeout=60, check=True).stdout
        for patch in package.patches:
            assert patch.file in changelog, (package.name, changelog)
        signed = subprocess.run(["rpm", "-qp", "--qf", "%{SIGPGP:pgpsig}%{RSAHEADER:pgpsig}", str(built)],
                                capture_output=True, text=True, timeout=60, check=True).stdout
        assert "Key ID" in signed, (package.name, signed)
    # The upstream packages the overlays replace never reach testing beside the site's builds.
    assert not [n for n in served if n.startswith("kernel-5.14.0-427.13.1.el9_4.")], sorted(served)
    assert cycle.refused.startswith("hpcos: refusing to promote testing to production: no nightly run"), cycle.refused
    # Nothing the cycle started is left running.
    agents = subprocess.run(["pgrep", "-af", "gpg-agent"], capture_output=True, text=True, timeout=30).stdout
    assert str(cycle.root) not in agents, agents
