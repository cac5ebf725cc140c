"""Every deviation between the test cluster and production, classed as the risks of an outage.

The seed: "Any deviations between the production and test clusters' configuration, both in hardware
and software, should be well documented. This document will help define the accepted technical risks."
A class's facts are what ``collect`` measured where it did, else what the profile declares.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcos.cluster.inventory import ClusterInventory, NodeClass
from hpcos.cluster.profiles import Profile
from hpcos.inventory.collect import Measured

# How a deviation is classed, in the order a plan lists them (most likely to bite first).
KINDS = {
    "untested-class": "node class never tested",
    "hardware": "hardware the test cluster lacks",
    "versions": "versions differing",
    "non-uniform": "nodes of one class differ",
    "scale": "scale",
    "roles": "roles the test cluster lacks",
}
HARDWARE = ("cpu_model", "hca_model", "hca_firmware", "gpus")
SOFTWARE = ("kernel", "hca_rate")


@dataclass(frozen=True)
class Deviation:
    kind: str  # a key of KINDS
    subject: str  # the production class (or "cluster")
    what: str
    test: str
    production: str

    @property
    def line(self) -> str:
        return (
            f"{KINDS[self.kind]}: {self.subject}: {self.what}: "
            f"test {self.test or '-'}, production {self.production or '-'}"
        )


def class_facts(node_class: NodeClass, measured: Measured | None, name: str) -> dict[str, str]:
    """Declared facts, overridden by measured ones (the majority value of the class's nodes)."""
    facts = {
        "cpu_model": node_class.cpu_model,
        "memory_gb": str(node_class.memory_gb or "") or None,
        "hca_model": node_class.hca.model if node_class.hca else None,
        "hca_firmware": node_class.hca.firmware if node_class.hca else None,
        "hca_rate": str(node_class.hca.rate) if node_class.hca and node_class.hca.rate else None,
        "gpus": ", ".join(node_class.gpus) or None,
        "kernel": node_class.kernel,
    }
    seen = measured.classes.get(name) if measured else None
    if seen:
        for fact in seen.facts:
            facts[fact] = seen.value(fact)
    return {k: v for k, v in facts.items() if v}


def _matching_test_class(
    name: str, facts: dict[str, str], test: dict[str, dict[str, str]]
) -> str | None:
    if name in test:
        return name
    signature = tuple(facts.get(f) for f in HARDWARE)
    return next(
        (n for n, f in test.items() if tuple(f.get(k) for k in HARDWARE) == signature), None
    )


def diff(
    test_profile: Profile,
    production_profile: Profile,
    test_measured: Measured | None = None,
    production_measured: Measured | None = None,
) -> list[Deviation]:
    test_inv: ClusterInventory = test_profile.inventory
    prod_inv: ClusterInventory = production_profile.inventory
    test = {n: class_facts(c, test_measured, n) for n, c in test_inv.classes.items()}
    prod = {n: class_facts(c, production_measured, n) for n, c in prod_inv.classes.items()}
    out: list[Deviation] = []
    for name, facts in prod.items():
        match = _matching_test_class(name, facts, test)
        if match is None:
            out.append(
                Deviation(
                    "untested-class",
                    name,
                    "no test class of this name or hardware",
                    "",
                    f"{prod_inv.classes[name].size} nodes",
                )
            )
        for fact in HARDWARE:
            value = facts.get(fact)
            if value and value not in {f.get(fact) for f in test.values()}:
                out.append(
                    Deviation(
                        "hardware",
                        name,
                        fact.replace("_", " "),
                        ", ".join(sorted({f[fact] for f in test.values() if f.get(fact)})),
                        value,
                    )
                )
        if match is not None:
            for fact in (*SOFTWARE, "memory_gb"):
                ours, theirs = test[match].get(fact), facts.get(fact)
                if ours and theirs and ours != theirs:
                    out.append(Deviation("versions", name, fact.replace("_", " "), ours, theirs))
            _package_versions(name, match, test_measured, production_measured, out)
    for label, measured in (("production", production_measured), ("test", test_measured)):
        for name, seen in measured.classes.items() if measured else []:
            for fact, values in seen.facts.items():
                if len(values) > 1:
                    shown = "; ".join(f"{v} on {n}" for v, n in sorted(values.items()))
                    out.append(
                        Deviation(
                            "non-uniform",
                            f"{label} {name}",
                            fact,
                            shown if label == "test" else "",
                            shown if label == "production" else "",
                        )
                    )
    if test_inv.scheduler != prod_inv.scheduler:
        out.append(
            Deviation("versions", "cluster", "scheduler", test_inv.scheduler, prod_inv.scheduler)
        )
    stacks_test, stacks_prod = set(test_profile.mpi), set(production_profile.mpi)
    if stacks_prod - stacks_test:
        out.append(
            Deviation(
                "versions",
                "cluster",
                "MPI stacks never tested",
                "",
                ", ".join(sorted(stacks_prod - stacks_test)),
            )
        )
    if prod_inv.total_nodes > test_inv.total_nodes:
        out.append(
            Deviation(
                "scale", "cluster", "nodes", str(test_inv.total_nodes), str(prod_inv.total_nodes)
            )
        )
        biggest = max(prod_inv.classes.items(), key=lambda item: item[1].size)
        largest_test = max((c.size for c in test_inv.classes.values()), default=0)
        if biggest[1].size > largest_test:
            out.append(
                Deviation(
                    "scale",
                    biggest[0],
                    "largest MPI job possible (nodes)",
                    str(largest_test),
                    str(biggest[1].size),
                )
            )
    missing_roles = prod_inv.roles - test_inv.roles
    if missing_roles:
        out.append(
            Deviation(
                "roles",
                "cluster",
                "roles",
                ", ".join(sorted(test_inv.roles)),
                ", ".join(sorted(missing_roles)),
            )
        )
    order = list(KINDS)
    return sorted(out, key=lambda d: (order.index(d.kind), d.subject, d.what))


def _package_versions(
    name: str,
    match: str,
    test_measured: Measured | None,
    production_measured: Measured | None,
    out: list[Deviation],
) -> None:
    if not (test_measured and production_measured):
        return
    ours, theirs = test_measured.classes.get(match), production_measured.classes.get(name)
    if not (ours and theirs):
        return
    for fact in sorted(set(ours.facts) & set(theirs.facts)):
        if fact.startswith("package:") and ours.value(fact) != theirs.value(fact):
            out.append(
                Deviation(
                    "versions",
                    name,
                    fact.split(":", 1)[1],
                    ours.value(fact) or "",
                    theirs.value(fact) or "",
                )
            )
