"""`hpcos inventory`: node facts measured through the launcher, and test-vs-production deviations."""

from __future__ import annotations

import json
import subprocess

import pytest

from hpcos.cli import main
from hpcos.cluster.inventory import ClusterInventory
from hpcos.cluster.profiles import load_profile
from hpcos.inventory import collect
from hpcos.inventory.diff import diff

PROFILE = """name: {name}
launcher: local
nodes: "{nodes}"
mpi:
  openmpi: {{mpicc: mpicc.openmpi, mpirun: [mpirun.openmpi, --oversubscribe]}}
inventory:
  classes:
{classes}
"""


def profile(tmp_path, name: str, nodes: str, classes: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(PROFILE.format(name=name, nodes=nodes, classes=classes))
    return load_profile(path)


def test_probe_output_of_a_real_node_and_a_real_hca_capture(repo_root):
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, env={"LC_ALL": "C"}).stdout
    meminfo = open("/proc/meminfo").read()
    devinfo = (repo_root / "tests" / "data" / "ib" / "ibv_devinfo_hdr.txt").read_text()
    text = (
        f"@@kernel\n5.14.0-427.13.1.el9_4.x86_64\n@@cpu\n{lscpu}@@memory\n{meminfo}@@hca\n{devinfo}"
        "@@gpu\nGPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-0d1e)\n"
        "@@packages\nkernel 5.14.0-427.13.1.el9_4\nopenmpi 4.1.1-5.el9\nbash 5.1.8-6.el9\n"
    )
    facts = collect.parse_probe("node001", text)
    model = next(
        line.split(":", 1)[1].strip()
        for line in lscpu.splitlines()
        if line.startswith("Model name")
    )
    assert facts.cpu_model == " ".join(model.split())
    mem_kb = int(
        next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal"))
    )
    assert facts.memory_gb == round(mem_kb / 1024 / 1024)
    assert (facts.hca_model, facts.hca_firmware) == ("MT_0000000223", "20.35.1012")
    assert facts.gpus == ["NVIDIA A100-SXM4-80GB"]
    assert facts.packages == {"kernel": "5.14.0-427.13.1.el9_4", "openmpi": "4.1.1-5.el9"}


def test_collect_measures_every_node_of_every_class_through_the_launcher(tmp_path):
    cluster = profile(
        tmp_path,
        "t",
        "c[1-2],login1",
        "    compute: {nodes: 'c[1-2]'}\n    login: {nodes: login1, roles: [login]}",
    )
    measured = collect.collect(cluster)
    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True).stdout.strip()
    assert measured.classes["compute"].facts["kernel"] == {kernel: "c[1-2]"}
    assert measured.classes["login"].value("kernel") == kernel
    again = collect.load(tmp_path, "t") if collect.save(measured, tmp_path) else None
    assert again == measured


def test_example_production_deviations_are_classed_as_risks(repo_root):
    clusters = repo_root / "integration_tests" / "clusters"
    found = diff(
        load_profile(clusters / "example-test-cluster.yaml"),
        load_profile(clusters / "example-production.yaml"),
    )
    lines = [d.line for d in found]
    assert (
        "node class never tested: gpu-a100: no test class of this name or hardware: test -, production 32 nodes"
        in lines
    )
    assert (
        "hardware the test cluster lacks: hdr-epyc-7763: hca firmware: test 20.35.1012, production 20.37.1014"
        in lines
    )
    assert any(d.kind == "hardware" and d.what == "gpus" for d in found)
    assert any(d.kind == "scale" and d.production == "1024" for d in found)
    assert [d.kind for d in found] == sorted(
        (d.kind for d in found),
        key=["untested-class", "hardware", "versions", "non-uniform", "scale", "roles"].index,
    )


def test_measured_values_override_the_declared_ones_and_a_mixed_class_is_a_finding(tmp_path):
    test = profile(
        tmp_path, "t", "t1", "    compute: {nodes: t1, hca: {model: CX6, firmware: '20.35'}}"
    )
    prod = profile(
        tmp_path,
        "p",
        "p[1-3]",
        "    compute: {nodes: 'p[1-3]', hca: {model: CX6, firmware: '20.35'}}",
    )
    measured_prod = collect.summarise(
        "p",
        prod.inventory,
        [
            collect.NodeFacts("p1", hca_model="CX6", hca_firmware="20.35", kernel="k2"),
            collect.NodeFacts("p2", hca_model="CX6", hca_firmware="20.37", kernel="k2"),
            collect.NodeFacts("p3", hca_model="CX6", hca_firmware="20.37", kernel="k2"),
        ],
    )
    measured_test = collect.summarise(
        "t",
        test.inventory,
        [collect.NodeFacts("t1", hca_model="CX6", hca_firmware="20.35", kernel="k1")],
    )
    lines = [d.line for d in diff(test, prod, measured_test, measured_prod)]
    assert (
        "hardware the test cluster lacks: compute: hca firmware: test 20.35, production 20.37"
        in lines
    )
    assert "versions differing: compute: kernel: test k1, production k2" in lines
    assert (
        "nodes of one class differ: production compute: hca_firmware: test -, "
        "production 20.35 on p1; 20.37 on p[2-3]"
    ) in lines


def test_cli_diff_and_collect(repo_root, tmp_path, capsys):
    assert (
        main(
            [
                "inventory",
                "diff",
                "example-test-cluster",
                "example-production",
                "--json",
                "--store",
                str(tmp_path),
            ]
        )
        == 0
    )
    risks = json.loads(capsys.readouterr().out)
    assert {r["class"] for r in risks} >= {
        "node class never tested",
        "hardware the test cluster lacks",
        "scale",
    }
    assert main(["inventory", "collect", "--cluster", "local", "--store", str(tmp_path)]) == 0
    assert (tmp_path / "inventory" / "local.json").is_file()


@pytest.mark.parametrize(
    "classes",
    [
        "    x: {}",
        "    x: {nodes: '-oProxyCommand=x'}",
        "    x: {nodes: 'n[1-2]', count: 1}",
        "    X!: {count: 2}",
    ],
)
def test_bad_inventories_are_refused(tmp_path, classes):
    from hpcos.core.sourced_yaml import InvalidInput

    with pytest.raises(InvalidInput):
        profile(tmp_path, "bad", "n1", classes)
    assert ClusterInventory().total_nodes == 0


@pytest.mark.parametrize(
    "change",
    [
        {"classes": None},
        {"classes": {"workstation": {"name": "w", "nodes": "n1", "facts": []}}},
        {"classes": {"workstation": {"name": "w", "nodes": "n1", "facts": {"kernel": None}}}},
        {"classes": {"workstation": {"name": "w", "nodes": "n1", "facts": {"kernel": {"6": 5}}}}},
        {
            "classes": {
                "workstation": {"name": "w", "nodes": "n1", "facts": {"kernel": {"6": "]x"}}}
            }
        },
        {"classes": {"workstation": {"name": "w", "nodes": "n[1-99999999]", "facts": {}}}},
    ],
)
def test_a_kept_inventory_of_another_shape_is_one_line(repo_root, tmp_path, capsys, change):
    """The store's inventory was read back on trust: None, a list or a stray bracket where a node set
    goes ended `hpcos inventory diff` in an AttributeError, a TypeError or ClusterShell's error."""
    kept = {"cluster": "local", "collected": "2026-12-01T00:00:00+00:00", "classes": {}, **change}
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "local.json").write_text(json.dumps(kept))
    argv = ["--specs", str(repo_root / "overlay_specs"), "--store", str(tmp_path)]
    assert main([*argv, "inventory", "diff", "local", "local"]) == 2
    err = capsys.readouterr().err
    assert "not an inventory written by hpcos" in err and err.count("\n") == 1, err
