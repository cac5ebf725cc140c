"""Measure what a cluster's nodes are: one fixed probe command per node, through the profile's launcher.

The probe prints sections (kernel, CPU, memory, HCAs, GPUs, packages) that are parsed here; nothing
from the profile reaches the command line, so nothing needs quoting.  Every node is measured, not one
per class: a class whose nodes differ (one node left on old firmware) is itself a finding, since the
seed's first rule is that the nodes of a cluster are the same.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ClusterShell.NodeSet import NodeSet, NodeSetParseError

from hpcos.cluster.inventory import ClusterInventory
from hpcos.cluster.launchers import launcher_for
from hpcos.cluster.profiles import Profile
from hpcos.core.budgets import node_set_problem
from hpcos.core.errors import UserError
from hpcos.core.files import write_text_atomically
from hpcos.core.store_files import BadStoreFile, dataclass_from, read_bytes_limited
from hpcos.probes.parsers import ParseError, ibv_devinfo

log = logging.getLogger("hpcos.inventory")

# Packages whose versions an outage cares about: the ones hpcos overlays, and what runs the jobs.
PACKAGES = (
    "kernel",
    "kernel-core",
    "openmpi",
    "mpich",
    "rdma-core",
    "ucx",
    "libfabric",
    "slurm",
    "pmix",
    "hwloc",
    "nvidia-driver",
    "lustre-client",
)
SECTIONS = ("kernel", "cpu", "memory", "hca", "gpu", "packages")
PROBE = "; ".join(
    [
        "echo @@kernel",
        "uname -r",
        "echo @@cpu",
        "LC_ALL=C lscpu 2>/dev/null",
        "echo @@memory",
        "grep MemTotal /proc/meminfo",
        "echo @@hca",
        "ibv_devinfo 2>/dev/null",
        "echo @@gpu",
        "nvidia-smi -L 2>/dev/null",
        "echo @@packages",
        "rpm -qa --qf '%{NAME} %{VERSION}-%{RELEASE}\\n' 2>/dev/null",
        "true",
    ]
)
COLLECT_TIMEOUT = 60.0


@dataclass
class NodeFacts:
    node: str
    kernel: str | None = None
    cpu_model: str | None = None
    memory_gb: int | None = None
    hca_model: str | None = None
    hca_firmware: str | None = None
    hca_rate: float | None = None
    gpus: list[str] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the node could not be measured, and why


def parse_probe(node: str, text: str) -> NodeFacts:
    """The facts in one node's probe output (pure: tested on real lscpu/ibv_devinfo texts)."""
    sections: dict[str, list[str]] = {name: [] for name in SECTIONS}
    current = None
    for line in text.splitlines():
        if line.startswith("@@") and line[2:] in sections:
            current = line[2:]
        elif current:
            sections[current].append(line)
    facts = NodeFacts(node)
    kernel = [line.strip() for line in sections["kernel"] if line.strip()]
    facts.kernel = kernel[0] if kernel else None
    for line in sections["cpu"]:
        key, _, value = line.partition(":")
        if key.strip() == "Model name" and value.strip():
            facts.cpu_model = " ".join(value.split())
            break
    for line in sections["memory"]:
        match = re.match(r"MemTotal:\s+(\d+)\s+kB", line)
        if match:
            facts.memory_gb = round(int(match[1]) / 1024 / 1024)
    try:
        hcas = ibv_devinfo.parse("\n".join(sections["hca"]))
    except ParseError:
        hcas = []
    if hcas:
        first = hcas[0]
        facts.hca_model = first.ca_type or first.name
        facts.hca_firmware = first.firmware
        rates = [p.rate for p in first.ports if p.rate]
        facts.hca_rate = max(rates) if rates else None
    for line in sections["gpu"]:
        match = re.match(r"GPU \d+: (.+?)(?: \(UUID:.*)?$", line.strip())
        if match:
            facts.gpus.append(match[1])
    for line in sections["packages"]:
        name, _, version = line.strip().partition(" ")
        if name in PACKAGES and version:
            # Several kernels are installed side by side; the newest listed is kept, the running one is `kernel`.
            facts.packages[name] = version
    return facts


@dataclass
class ClassFacts:
    """What the nodes of one class measured: each fact's values with the nodes that have them."""

    name: str
    nodes: str
    facts: dict[str, dict[str, str]]  # fact -> value -> node set
    unreachable: str = ""

    def value(self, fact: str) -> str | None:
        """The value most nodes have (None when not measured)."""
        values = self.facts.get(fact, {})
        return max(values, key=lambda v: len(NodeSet(values[v]))) if values else None

    def uniform(self, fact: str) -> bool:
        return len(self.facts.get(fact, {})) <= 1


@dataclass
class Measured:
    cluster: str
    collected: str
    classes: dict[str, ClassFacts]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Measured:
        """Read back as untrusted (a store file): every field of its type and every node set one that
        ClusterShell takes within the node budget (a list or a stray bracket ended `inventory diff`
        in a traceback)."""
        data = dataclass_from(Measured, json.loads(text), "inventory")
        classes = {}
        for name, value in data.classes.items():
            facts = ClassFacts(**value) if isinstance(value, dict) else value
            for nodes in (
                facts.nodes,
                facts.unreachable,
                *(n for values in facts.facts.values() for n in values.values()),
            ):
                if nodes and node_set_problem(nodes) is not None:
                    raise BadStoreFile(f"class {name[:40]!r}: a node set over the node budget")
                try:
                    NodeSet(nodes)
                except NodeSetParseError:
                    raise BadStoreFile(
                        f"class {name[:40]!r}: {nodes[:40]!r} is not a node set"
                    ) from None
            classes[name] = facts
        return cls(data.cluster, data.collected, classes)


def _fact_values(facts: NodeFacts) -> dict[str, str]:
    values = {
        "kernel": facts.kernel,
        "cpu_model": facts.cpu_model,
        "memory_gb": str(facts.memory_gb) if facts.memory_gb else None,
        "hca_model": facts.hca_model,
        "hca_firmware": facts.hca_firmware,
        "hca_rate": f"{facts.hca_rate:g}" if facts.hca_rate else None,
        "gpus": ", ".join(facts.gpus) if facts.gpus else None,
    }
    values.update({f"package:{name}": version for name, version in facts.packages.items()})
    return {k: v for k, v in values.items() if v}


def summarise(
    profile_name: str, inventory: ClusterInventory, per_node: list[NodeFacts]
) -> Measured:
    by_node = {f.node: f for f in per_node}
    classes = {}
    for name, node_class in inventory.classes.items():
        grouped: dict[str, dict[str, list[str]]] = {}
        unreachable = []
        for node in node_class.node_set:
            facts = by_node.get(node)
            if facts is None or facts.error:
                unreachable.append(node)
                continue
            for fact, value in _fact_values(facts).items():
                grouped.setdefault(fact, {}).setdefault(value, []).append(node)
        facts = {
            f: {v: str(NodeSet.fromlist(n)) for v, n in vs.items()} for f, vs in grouped.items()
        }
        classes[name] = ClassFacts(
            name,
            node_class.nodes or "",
            facts,
            str(NodeSet.fromlist(unreachable)) if unreachable else "",
        )
    return Measured(profile_name, datetime.now(UTC).isoformat(timespec="seconds"), classes)


def collect(profile: Profile, timeout: float = COLLECT_TIMEOUT) -> Measured:
    """Run the probe on every node of every class of ``profile``'s inventory."""
    inventory = profile.inventory
    if not inventory.classes:
        raise UserError(
            f"profile {profile.name!r} has no inventory.classes: describe the node classes first "
            "(docs/outage.md)"
        )
    nodes = NodeSet.fromlist([c.nodes for c in inventory.classes.values() if c.nodes])
    if not len(nodes):
        raise UserError(
            f"profile {profile.name!r}: no class lists its nodes, so nothing can be measured"
        )
    log.info("measuring %d nodes of %s", len(nodes), profile.name)
    results = launcher_for(profile).run(PROBE, nodes, timeout=timeout)
    per_node = []
    for node, result in results.items():
        if result.ok:
            per_node.append(parse_probe(node, result.stdout))
        else:
            per_node.append(NodeFacts(node, error=result.describe().splitlines()[0]))
    failed = NodeSet.fromlist([f.node for f in per_node if f.error])
    if failed:
        log.warning("not measured: %s", failed)
    return summarise(profile.name, inventory, per_node)


def save(measured: Measured, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{measured.cluster}.json"
    write_text_atomically(path, measured.to_json())
    return path


def load(directory: Path, cluster: str) -> Measured | None:
    path = directory / f"{cluster}.json"
    try:
        return Measured.from_json(read_bytes_limited(path, what="inventory").decode("utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, RecursionError, BadStoreFile) as exc:
        why = " ".join(str(exc).split())[:200]
        raise UserError(
            f"{path}: not an inventory written by hpcos ({why}); run `hpcos inventory collect` again"
        ) from None
