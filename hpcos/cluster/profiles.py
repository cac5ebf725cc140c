"""Cluster profiles: ``integration_tests/clusters/<name>.yaml``.

A profile says where the integration tests run (launcher, node set, timeouts), which MPI stacks
exist there, what InfiniBand hardware is expected, how to check that an OS update landed, and the
performance references.  Tests never choose a launcher or a node themselves: the profile does.
Validated like the site specs, through ``hpcos.core.sourced_yaml``, so every error names file:line and field.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from ClusterShell.NodeSet import NodeSet, NodeSetException, NodeSetParseError
from ClusterShell.Topology import TopologyError, TopologyGraph
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from hpcos.cluster.inventory import ClusterInventory
from hpcos.cluster.registry import LAUNCHERS
from hpcos.core import sourced_yaml
from hpcos.core.budgets import node_set_problem
from hpcos.core.errors import UserError
from hpcos.core.sourced_yaml import DescribedPattern, InputError, InvalidInput, SourcedDoc
from hpcos.results.model import Reference

if TYPE_CHECKING:
    LauncherName = str  # mypy cannot read a Literal built from the registry
else:
    LauncherName = Literal[tuple(LAUNCHERS)]  # the names validation accepts, written once

PROFILE_SUFFIX = ".yaml"
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Profile values end up in shell command lines on the nodes (ssh, srun, perftest, the version probe).
# Every such field takes only what its real values look like, and the launchers quote them as well.
StackName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z][A-Za-z0-9_.+-]*$",
        meaning="an MPI stack name (letters, digits and _ . + -, starting with a letter)",
    ),
]
DeviceName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        meaning="an RDMA device name such as mlx5_0 (letters, digits and _ . : -)",
    ),
]
NodeName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        meaning="a node name (letters, digits and _ . -, not starting with - or .)",
    ),
]
# One command-line word: an option or its value, never shell syntax.
Argument = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_./=:,+-]+$",
        meaning="one command-line argument (letters, digits and _ . / = : , + -)",
    ),
]
EnvName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        meaning="an environment variable name (letters, digits and _, not starting with a digit)",
    ),
]
# A Python module path, as ``pytest -p`` takes it.
PluginName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$",
        meaning="a Python module path such as site_checks.plugin",
    ),
]
# The gateways' Python: ClusterShell joins it into the gateway's command line unquoted.
Executable = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_./+][A-Za-z0-9_./+-]*$",
        meaning="a program name or path (letters, digits and _ . / + -, not starting with -)",
    ),
]
UserName = Annotated[
    str,
    DescribedPattern(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$", meaning="a user name (letters, digits and _ . -)"
    ),
]


class Strict(BaseModel):
    # A misspelled key in a profile would silently turn a check off; refuse it instead.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


MAX_TIMEOUT = 7 * 24 * 3600


class Timeouts(Strict):
    """Seconds.  Every launch is bounded: a pending srun or a failed hydra launch otherwise hangs."""

    # At most a week: .inf (or 1e300) would overflow every clock it is added to.
    command: float = Field(60, gt=0, le=MAX_TIMEOUT, allow_inf_nan=False)
    mpi: float = Field(120, gt=0, le=MAX_TIMEOUT, allow_inf_nan=False)


class Ssh(Strict):
    fanout: PositiveInt = 64
    connect_timeout: PositiveInt = 5
    user: UserName | None = None
    config: str | None = None  # an ssh client config file (ssh -F)
    # ClusterShell's tree mode: a topology.conf (relative to the profile's file) whose [routes] say which
    # gateways reach which nodes; load_profile checks it and keeps its absolute path here.
    topology: str | None = None
    # What the gateways run as ``PYTHON -m ClusterShell.Gateway``: a Python that imports ClusterShell.
    gateway_python: Executable = "python3"

    @field_validator("topology")
    @classmethod
    def _a_path(cls, value: str | None) -> str | None:
        if value is not None and (not value or not value.isprintable()):
            raise ValueError("expected the path of a topology file on one line of printable text")
        return value


class Slurm(Strict):
    partition: str | None = None
    time_limit: str = "00:10:00"
    extra_args: list[Argument] = []


class MpiStack(Strict):
    name: str = ""  # filled in from the key under ``mpi:`` (a StackName, checked there)
    mpicc: str
    mpirun: list[str]  # local/ssh launchers add ``-np N``
    srun_mpi: str = "pmix"  # slurm launcher: srun --mpi=<srun_mpi>
    env: dict[EnvName, str] = {}
    module: str | None = None  # environment module loaded before compiling and running
    osu: str | None = None  # directory holding osu_latency, osu_bw, osu_allreduce
    osu_args: list[str] = []  # options for every OSU run, e.g. [-c] to validate the data (OMB 7+)
    imb: str | None = None  # path of IMB-MPI1

    @field_validator("mpirun", mode="before")
    @classmethod
    def _one_word_is_a_list(cls, value):
        return [value] if isinstance(value, str) else value

    @field_validator("mpirun")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("expected the launcher command, e.g. [mpirun, --oversubscribe]")
        return value


class Perftest(Strict):
    peer: NodeName  # the node that runs the perftest server side
    device: DeviceName | None = None
    extra_args: list[Argument] = []


class Infiniband(Strict):
    """``expected: false`` skips the IB tests with a reason; ``true`` fails them when the HCA is missing."""

    expected: bool = False
    devices: list[DeviceName] = []
    port_state: str = "Active"
    physical_state: str = "LinkUp"
    rate: float | None = None  # Gb/s, e.g. 200 for HDR
    link_layer: str = "InfiniBand"
    firmware: str | None = None
    perftest: Perftest | None = None


class OsUpdate(Strict):
    # Whose snapshot the checks compare the nodes with (in the store; $HPCOS_TESTING_SNAPSHOT, set by
    # the nightly job, names the very snapshot).  None: the checks skip.
    environment: str | None = "testing"
    kernel_package: str = "kernel"
    packages: list[str] = ["openmpi", "mpich", "rdma-core", "ucx"]


def _count_or_percentage(value: object) -> str:
    # One type (a string) rather than ``int | str``: a union would put its member's name into the
    # locations that error messages report (tests/test_specs_sourced_yaml.py).
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    text = value.strip() if isinstance(value, str) else ""
    number = text.removesuffix("%")
    if text.isdigit() or (
        text.endswith("%") and number.replace(".", "", 1).isdigit() and float(number) <= 100
    ):
        return text
    raise ValueError(f'expected a count (2) or a percentage of the nodes ("5%"), found {value!r}')


class Deploy(Strict):
    """How ``hpcos deploy`` puts a snapshot on this cluster's nodes (docs/deploy.md).

    Commands run on each node through the profile's launcher; ``{node}`` and ``{root}`` in them are
    replaced by the node's name and ``root`` (both shell-quoted)."""

    # How deploy reaches the nodes, when not through the tests' ``launcher``: an administrator's path
    # such as ``ssh`` reaches a node whatever Slurm thinks of it, which ``--rolling`` needs while
    # Slurm keeps each node down for its reboot (srun never starts there).
    launcher: LauncherName | None = None
    batch_size: PositiveInt = 4  # the most nodes out of service at once
    # The first batch is the canary: any failure there stops the rollout (default: batch_size nodes).
    canary: PositiveInt | None = None
    # Failed nodes the rollout tolerates before it touches no further node: a count (``2``) or a share
    # of the nodes deployed (``"5%"``, rounded down).  0: the first failure stops it.
    max_failures: Annotated[str, BeforeValidator(_count_or_percentage)] = "0"
    target: str | None = None  # the site target the nodes run (default: the site's only one)
    # The node's system root: / on an installed node; a diskless image's chroot (Warewulf), or a
    # simulated node in hpcos's own tests.  dnf and rpm get --installroot/--root when it is not /.
    root: str = "/"
    repo_file: str = "/etc/yum.repos.d/hpcos.repo"  # under root
    environments_url: str | None = (
        None  # where the nodes reach the store's web server (docs/repositories.md)
    )
    snapshots_url: str | None = None
    gpgcheck: bool = True
    gpgkey: str | None = None  # URL of the key that signs the overlay packages
    drain: Literal["slurm", "none"] = "slurm"  # take nodes out of the scheduler first
    drain_timeout: float = Field(3600, gt=0)  # seconds to wait for running jobs to end
    dnf_timeout: float = Field(1800, gt=0)
    # A change of any of these packages (or of the kernel) needs a reboot to take effect.
    reboot_packages: list[str] = ["kernel", "kernel-core", "glibc", "systemd", "linux-firmware"]
    reboot: str = "systemctl reboot"
    reboot_timeout: float = Field(900, gt=0)  # seconds for the node to come back
    boot_id: str = "cat /proc/sys/kernel/random/boot_id"  # changes with every boot
    running_kernel: str = "uname -r"
    # The kernel the next boot starts (EL9: each kernel install makes the new kernel the default), and
    # how to make it the snapshot's ({kernel}: version-release.arch) when a rollback needs the older one.
    boot_default: str = "grubby --default-kernel"
    set_boot_default: str = "grubby --set-default /boot/vmlinuz-{kernel}"
    # ``--rolling``: the script hpcos leaves on the node (under root) for the site's Slurm RebootProgram
    # to run before it reboots: the install from the node's dnf cache (docs/deploy.md).
    update_at_reboot: str = "/var/lib/hpcos/update-at-reboot"

    def failure_budget(self, nodes: int) -> int:
        """The failed nodes tolerated out of ``nodes``: one more stops the rollout."""
        if not self.max_failures.endswith("%"):
            return int(self.max_failures)
        return int(float(self.max_failures.removesuffix("%")) * nodes // 100)

    @field_validator("repo_file")
    @classmethod
    def _repo_file_under_root(cls, value: str) -> str:
        # Written on every node as root: it must stay under ``root`` ("../" would leave a simulated
        # node's tree, or put the file anywhere on a real one).
        parts = value.split("/")
        if (
            not value.startswith("/")
            or ".." in parts
            or not value.isprintable()
            or not value.endswith(".repo")
        ):
            raise ValueError(
                "expected an absolute path ending in .repo, without '..' (it is written under root)"
            )
        return value


def _reference(value) -> Reference:
    if isinstance(value, Reference):
        return value
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError("expected [value, lower, upper, unit], e.g. [0.5, null, 3.0, us]")
    ref, lower, upper, unit = value
    if not isinstance(ref, (int, float)) or isinstance(ref, bool):
        raise ValueError(f"expected a number as reference value, found {ref!r}")
    for bound in (lower, upper):
        if bound is not None and (not isinstance(bound, (int, float)) or isinstance(bound, bool)):
            raise ValueError(f"expected a relative bound (number or null), found {bound!r}")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"lower bound {lower} is above upper bound {upper}")
    if not isinstance(unit, str) or not unit:
        raise ValueError(f"expected a unit such as 'us' or 'MB/s', found {unit!r}")
    return Reference(float(ref), lower, upper, unit)


# metric -> MPI stack -> message size -> reference, written ``[value, lower, upper, unit]``
ReferenceEntry = Annotated[Reference, BeforeValidator(_reference)]
References = dict[str, dict[str, dict[int, ReferenceEntry]]]


class Profile(Strict):
    name: str
    description: str = ""
    launcher: LauncherName
    nodes: str = "localhost"  # a ClusterShell node set
    node_class: str = "default"  # baselines key on it
    # MPI ranks a job places on each node it uses (the launchers' host lists say so, the probes check it).
    ranks_per_node: PositiveInt = 1
    timeouts: Timeouts = Timeouts()
    ssh: Ssh = Ssh()
    slurm: Slurm = Slurm()
    mpi: dict[StackName, MpiStack] = {}
    infiniband: Infiniband = Infiniband()
    os_update: OsUpdate = OsUpdate()
    deploy: Deploy = Deploy()
    references: References = {}
    # Runs of a benchmark whose median is judged against the references (harness/repeats.py).
    repeat: PositiveInt = 3
    # pytest plugins (module paths) the run loads besides the harness's own; `hpcos test` loads no other.
    pytest_plugins: list[PluginName] = []
    inventory: ClusterInventory = ClusterInventory()
    """Node classes, hardware and roles (docs/outage.md): what `hpcos inventory` measures and compares."""

    @field_validator("mpi", mode="before")
    @classmethod
    def _name_the_stacks(cls, value):
        if isinstance(value, dict):
            return {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in value.items()}
        return value

    @field_validator("nodes")
    @classmethod
    def _node_set(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("expected a node set on one line of printable text")
        if (too_big := node_set_problem(value)) is not None:
            raise ValueError(f"expected a node set within budget; found {too_big}")
        try:
            parsed = NodeSet(value)
        except NodeSetParseError as exc:
            raise ValueError(
                f"expected a ClusterShell node set such as node[001-016] ({exc})"
            ) from None
        if not len(parsed):
            raise ValueError("expected at least one node")
        # ssh and srun would take "-oProxyCommand=..." as an option; real host names never look like that.
        bad = next((node for node in parsed if not _NODE_NAME.fullmatch(node)), None)
        if bad is not None:
            raise ValueError(
                f"expected node names of letters, digits and _ . - (not starting with - or .); "
                f"found {bad!r}"
            )
        return value

    @model_validator(mode="after")
    def _references_name_known_stacks(self) -> Profile:
        for metric, per_stack in self.references.items():
            unknown = set(per_stack) - set(self.mpi)
            if unknown:
                raise ValueError(
                    f"references.{metric} names MPI stacks not in mpi: {', '.join(sorted(unknown))}"
                )
        return self

    @property
    def node_set(self) -> NodeSet:
        return NodeSet(self.nodes)

    def reference(self, metric: str, stack: str | None, size: int | None) -> Reference | None:
        """The reference for one measurement, or None when the profile sets none."""
        if size is None:
            return None
        return self.references.get(metric, {}).get(stack or "", {}).get(size)

    def stacks(self, selected: str | None = None) -> list[MpiStack]:
        """The profile's MPI stacks, or the comma-separated ``selected`` ones (``--mpi``)."""
        if not selected:
            return list(self.mpi.values())
        names = [s.strip() for s in selected.split(",") if s.strip()]
        unknown = [n for n in names if n not in self.mpi]
        if unknown:
            raise UserError(
                f"--mpi {selected}: profile {self.name!r} has no MPI stack "
                f"{', '.join(unknown)} (it has: {', '.join(self.mpi) or 'none'})"
            )
        return [self.mpi[n] for n in names]

    def select_nodes(self, selected: str | None = None) -> NodeSet:
        """The profile's nodes, or the subset given with ``--nodes`` (which must lie inside them)."""
        if not selected:
            return self.node_set
        if (too_big := node_set_problem(selected)) is not None:
            raise UserError(f"--nodes: {too_big}")
        try:
            wanted = NodeSet(selected)
        except NodeSetParseError as exc:
            raise UserError(f"--nodes {selected}: not a node set ({exc})") from None
        outside = wanted - self.node_set
        if outside:
            raise UserError(
                f"--nodes {selected}: {outside} not in profile {self.name!r} nodes {self.nodes}"
            )
        return wanted


def is_profile_path(name_or_path: str) -> bool:
    """Whether ``--cluster`` names a file (``.yaml``, or with a ``/``) rather than a profile name."""
    return Path(name_or_path).suffix in (".yaml", ".yml") or "/" in name_or_path


def profile_path(name_or_path: str, search_dirs: list[Path]) -> Path:
    """A profile name (``local``) looked up in ``search_dirs``, or a path to a YAML file."""
    if is_profile_path(name_or_path):
        return Path(name_or_path)
    for directory in search_dirs:
        candidate = directory / f"{name_or_path}{PROFILE_SUFFIX}"
        if candidate.is_file():
            return candidate
    known = sorted(
        {p.stem for d in search_dirs if d.is_dir() for p in d.glob(f"*{PROFILE_SUFFIX}")}
    )
    raise UserError(
        f"no cluster profile {name_or_path!r} in {', '.join(str(d) for d in search_dirs)}"
        f" (known: {', '.join(known) or 'none'})"
    )


def load_profile(path: str | Path) -> Profile:
    """Load and validate one profile; errors name file:line and field (``hpcos.core.sourced_yaml``).
    An ``ssh.topology`` file is checked too (``topology_errors``) and kept as an absolute path."""
    doc = sourced_yaml.load(path)
    profile = sourced_yaml.validate(Profile, doc)
    if profile.ssh.topology is None:
        return profile
    topology = (Path(path).parent / profile.ssh.topology).absolute()
    errors = topology_errors(topology, doc)
    if errors:
        raise InvalidInput(errors)
    return profile.model_copy(
        update={"ssh": profile.ssh.model_copy(update={"topology": str(topology)})}
    )


TOPOLOGY_MAX_BYTES = 1 << 20
_TOPOLOGY_FIELD = ("ssh", "topology")


def topology_errors(path: Path, profile: SourcedDoc) -> list[InputError]:
    """What is wrong with a ClusterShell topology file, each naming its file, line and route.

    Read as ClusterShell reads it (``configparser``, section ``[routes]``, ``gateways: nodes``), and
    stricter: every node set parses, names only safe host names (a gateway's name goes on an ssh command
    line) and stays within the node set budget, and the routes form a tree (ClusterShell refuses loops and
    nodes reached two ways).  A file that cannot be read is the profile's ``ssh.topology`` error."""
    try:
        if not path.is_file():
            raise FileNotFoundError(2, "no such file" if not path.exists() else "not a file")
        if path.stat().st_size > TOPOLOGY_MAX_BYTES:
            return [
                profile.error(
                    _TOPOLOGY_FIELD, f"{path}: expected at most {TOPOLOGY_MAX_BYTES} bytes"
                )
            ]
        raw = path.read_bytes()
    except OSError as exc:
        return [profile.error(_TOPOLOGY_FIELD, f"cannot read {path}: {exc.strerror}")]
    name = str(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return [InputError(name, line, "", "expected UTF-8 text")]
    parser = configparser.ConfigParser(interpolation=None, default_section="\0")
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # node names are case-sensitive
    try:
        parser.read_string(text, source=name)
    except configparser.MissingSectionHeaderError as exc:
        return [InputError(name, exc.lineno, "", "expected a [routes] section before any route")]
    except configparser.ParsingError as exc:
        return [
            InputError(
                name,
                line,
                "",
                f"expected 'gateways: nodes' or a [section]; found {text.splitlines()[line - 1]!r}",
            )
            for line, _ in exc.errors
        ]
    except configparser.Error as exc:
        line = getattr(exc, "lineno", 0) or 0
        return [InputError(name, line, "", f"topology syntax error: {exc.message.splitlines()[0]}")]
    if not parser.has_section("routes"):
        return [InputError(name, 0, "", "expected a [routes] section of 'gateways: nodes' lines")]
    lines = _route_lines(text)
    errors: list[InputError] = []
    graph = TopologyGraph()
    routes = parser.items("routes")
    if not routes:
        return [InputError(name, lines.get("", 0), "routes", "expected at least one route")]
    for source, targets in routes:
        line, field = lines.get(source, 0), sourced_yaml.format_loc(("routes", source))
        parsed = []
        for value in (source, targets):
            try:
                problem = _topology_node_set_problem(value)
            except NodeSetException as exc:
                problem = (
                    f"expected a ClusterShell node set such as gw[1-2]; found {value!r} ({exc})"
                )
            if problem:
                errors.append(InputError(name, line, field, problem))
                break
            parsed.append(NodeSet(value))
        else:
            try:
                graph.add_route(*parsed)
            except TopologyError as exc:
                errors.append(InputError(name, line, field, f"expected a tree of routes: {exc}"))
    return errors


def _topology_node_set_problem(value: str) -> str | None:
    if "#" in value or ";" in value:
        return f"expected a node set; found {value!r} (a comment goes on a line of its own)"
    if (too_big := node_set_problem(value)) is not None:
        return f"expected a node set within budget; found {too_big}"
    parsed = NodeSet(value)
    if not len(parsed):
        return f"expected at least one node; {value!r} names none"
    bad = next((node for node in parsed if not _NODE_NAME.fullmatch(node)), None)
    if bad is not None:
        return f"expected node names of letters, digits and _ . - (not starting with - or .); found {bad!r}"
    return None


def _route_lines(text: str) -> dict[str, int]:
    """Route (its left side, as configparser keys it) -> its line in [routes]; "" -> the section's line."""
    found: dict[str, int] = {}
    section = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            if section == "routes":
                found.setdefault("", number)
        elif section == "routes" and line[:1] not in (" ", "\t") and stripped[:1] not in ("#", ";"):
            key = re.split(r"[:=]", stripped, maxsplit=1)[0].strip()
            if key:
                found.setdefault(key, number)
    return found
