"""What a cluster is made of, as its profile declares it: node classes with their counts, hardware,
software and roles.

The seed asks for a test cluster with "at least one of every Linux host in the production cluster"
and for every deviation between the two documented, since the deviations are the risks of an outage.
So both profiles (the test cluster's and the production one) carry this section; ``hpcos inventory
collect`` measures the parts a node can tell (CPU, memory, HCA and firmware, GPUs, kernel, packages)
and ``hpcos inventory diff`` lists every deviation.
"""

from __future__ import annotations

from typing import Annotated, Literal

from ClusterShell.NodeSet import NodeSet, NodeSetParseError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

# Roles the seed names as dedicated hosts beside the compute nodes.
ROLES = (
    "compute",
    "login",
    "service",
    "storage",
    "monitoring",
    "configuration-management",
    "scheduler",
    "provisioning",
    "gpu",
)
# A hardware or software description: printable, one line, no shell or markup specials needed.
Description = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 ._@:+/(),-]{1,120}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Hca(_Strict):
    model: Description
    """As ibv_devinfo's board_id or the part name, e.g. MT_0000000223 or ConnectX-6."""
    firmware: Description | None = None
    rate: int | None = Field(default=None, gt=0)
    """Link rate in Gb/s (ibstat's Rate)."""


class NodeClass(_Strict):
    """Nodes that are built the same: what a baseline, a deploy batch and a risk are about."""

    nodes: str | None = None
    """The class's node set (ClusterShell syntax); optional for a production class known by count."""
    count: int | None = Field(default=None, ge=1)
    """Number of nodes; the size of ``nodes`` when omitted."""
    roles: list[Literal[ROLES]] = ["compute"]
    cpu_model: Description | None = None
    memory_gb: int | None = Field(default=None, ge=1)
    hca: Hca | None = None
    gpus: list[Description] = []
    kernel: Description | None = None
    """Expected running kernel (uname -r); measured by collect."""

    @field_validator("nodes")
    @classmethod
    def _node_set(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parsed = NodeSet(value)
        except NodeSetParseError as exc:
            raise ValueError(
                f"expected a ClusterShell node set such as node[001-016] ({exc})"
            ) from None
        if not len(parsed) or any(name.startswith("-") for name in parsed):
            raise ValueError("expected node names (not empty, none starting with '-')")
        return value

    @model_validator(mode="after")
    def _sized(self) -> NodeClass:
        if self.nodes is None and self.count is None:
            raise ValueError("give the class's nodes or its count")
        if (
            self.nodes is not None
            and self.count is not None
            and self.count < len(NodeSet(self.nodes))
        ):
            raise ValueError(
                f"count {self.count} is smaller than the {len(NodeSet(self.nodes))} nodes listed"
            )
        return self

    @property
    def size(self) -> int:
        return self.count if self.count is not None else len(NodeSet(self.nodes))

    @property
    def node_set(self) -> NodeSet:
        return NodeSet(self.nodes or "")


ClassName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class ClusterInventory(_Strict):
    scheduler: Literal["slurm", "pbs", "lsf", "none"] = "slurm"
    classes: dict[ClassName, NodeClass] = {}

    @property
    def total_nodes(self) -> int:
        return sum(c.size for c in self.classes.values())

    @property
    def roles(self) -> set[str]:
        return {role for c in self.classes.values() for role in c.roles}

    def class_of(self, node: str) -> str | None:
        return next((name for name, c in self.classes.items() if node in c.node_set), None)
