"""What the production gate needs to see before it opens: the site's test-cluster profile and a
verified deployment of the snapshot on it (tests/test_deploy.py runs the real deploy)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hpcos.core.store_layout import StoreLayout
from hpcos.repo import deployments

CLUSTER = "test"
NODE = "node001"


def write_test_cluster(specs: Path) -> str:
    """site.yaml's harness.profile (profile.yaml beside the specs); returns its sha256."""
    profile = specs.parent / "profile.yaml"
    profile.write_text(f"name: {CLUSTER}\nlauncher: local\nnodes: {NODE}\n")
    return hashlib.sha256(profile.read_bytes()).hexdigest()


def deployed(store: Path, snapshot: str, profile_sha256: str) -> None:
    """What `hpcos deploy` records when it verified ``snapshot`` on node001."""
    deployments.write(StoreLayout(store), deployments.DeploymentRecord(
        deploy_id=f"d-{snapshot}", environment="testing", snapshot=snapshot, cluster=CLUSTER,
        profile_sha256=profile_sha256, started="2026-11-01T01:00:00+00:00", finished="2026-11-01T01:10:00+00:00",
        batch_size=1, nodes={NODE: deployments.NodeDeployment(NODE, verified=True)}))
