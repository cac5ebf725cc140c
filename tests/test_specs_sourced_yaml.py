"""``hpcos.core.sourced_yaml``: pydantic errors become ``file:line: field: message`` lines.

The models mirror what cluster profiles use (a launcher section, a list of them, choices, patterns);
like every model hpcos validates through it, they have no unions but Optional, which keeps pydantic's
error locations equal to the file's own keys and indexes.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Literal

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict

from hpcos.core import sourced_yaml
from hpcos.core.sourced_yaml import DescribedPattern

HostName = Annotated[
    str, DescribedPattern(pattern=r"^[a-z][a-z0-9-]*$", meaning="a host name (a-z, 0-9 and -)")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Launcher(Strict):
    kind: Literal["local", "ssh", "slurm"]
    hosts: list[HostName] = []
    user: str | None = None
    partition: str | None = None


class Profile(Strict):
    launcher: Launcher
    fallbacks: list[Launcher] = []
    nodes: dict[str, Launcher] = {}
    mode: Literal["fast", "full"] = "fast"


def problems(text: str) -> list[str]:
    with pytest.raises(sourced_yaml.InvalidInput) as caught:
        sourced_yaml.validate(Profile, sourced_yaml.loads(text, "profile.yaml"))
    return [str(e) for e in caught.value.errors]


def test_choice_suggests_the_closest():
    assert problems("launcher:\n  kind: slrum\n  partition: debug\n") == [
        "profile.yaml:2: launcher.kind: expected one of 'local', 'ssh', 'slurm'; found 'slrum'; "
        "did you mean 'slurm'?"
    ]
    assert problems("launcher: {kind: local}\nmode: ful\n") == [
        "profile.yaml:2: mode: expected one of 'fast', 'full'; found 'ful'; did you mean 'full'?"
    ]


def test_a_missing_field_names_itself():
    assert problems("launcher:\n  partition: debug\n") == [
        "profile.yaml:1: launcher.kind: required field is missing"
    ]


def test_an_error_inside_a_section_names_the_whole_path():
    assert problems("launcher:\n  kind: ssh\n  hosts: node01\n") == [
        "profile.yaml:3: launcher.hosts: expected a valid list; found 'node01'"
    ]


def test_a_pattern_says_what_it_means_not_its_regex():
    assert problems("launcher:\n  kind: ssh\n  hosts: [node01, Node_2]\n") == [
        "profile.yaml:3: launcher.hosts[1]: expected a host name (a-z, 0-9 and -); found 'Node_2'"
    ]


def test_unknown_key_suggests_that_sections_keys():
    assert problems("launcher:\n  kind: slurm\n  partiton: debug\n") == [
        "profile.yaml:3: launcher.partiton: unknown key 'partiton'; did you mean 'partition'?"
    ]
    assert problems("launcher: {kind: local}\nmdoe: fast\nzzz: 1\n") == [
        "profile.yaml:2: mdoe: unknown key 'mdoe'; did you mean 'mode'?",
        "profile.yaml:3: zzz: unknown key 'zzz'; expected one of: fallbacks, launcher, mode, nodes",
    ]


def test_unknown_key_in_a_list_and_in_a_mapping():
    assert problems(
        "launcher: {kind: local}\nfallbacks:\n  - {kind: local}\n  - {kind: ssh, hosts: [a], "
        "usr: me}\nnodes:\n  n1: {kind: ssh, parttion: x}\n"
    ) == [
        "profile.yaml:4: fallbacks[1].usr: unknown key 'usr'; did you mean 'user'?",
        "profile.yaml:6: nodes.n1.parttion: unknown key 'parttion'; did you mean 'partition'?",
    ]


def test_an_unknown_key_that_means_a_missing_one_is_said_once():
    assert problems("launcher:\n  knd: local\n") == [
        "profile.yaml:2: launcher.knd: unknown key 'knd'; did you mean 'kind'?"
    ]


def test_every_duplicate_key_is_reported_with_its_first_line():
    with pytest.raises(sourced_yaml.InvalidInput) as caught:
        sourced_yaml.loads("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "x.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "x.yaml:4: b.c: key given twice (first on line 3)",
        "x.yaml:5: a: key given twice (first on line 1)",
    ]


def test_allowed_keys():
    keys = ["kind", "hosts", "user", "partition"]
    assert sourced_yaml.allowed_keys(Profile, ("launcher",)) == keys
    assert sourced_yaml.allowed_keys(Profile, ("fallbacks", 0)) == keys
    assert sourced_yaml.allowed_keys(Profile, ("nodes", "n1")) == keys
    assert sourced_yaml.allowed_keys(Profile, ("mode",)) == []


def test_credentials_are_stripped_and_never_echoed():
    doc = sourced_yaml.loads(
        "launcher:\n  kind: ssh\n  hosts: [a]\n  password: pw-4711\n"
        "fallbacks:\n  - {kind: ssh, user: https://bob:pw-4712@inventory.example.org/nodes}\n",
        "p.yaml",
    )
    found = sourced_yaml.strip_credentials(Profile, doc, lambda loc: f"use ~/.netrc ({loc[0]})")
    assert [str(e) for e in found] == [
        "p.yaml:4: launcher.password: credentials do not belong in p.yaml; use ~/.netrc (launcher)",
        "p.yaml:6: fallbacks[0].user: URL contains a user name and password; use ~/.netrc (fallbacks)",
    ]
    assert doc.data == {
        "launcher": {"kind": "ssh", "hosts": ["a"]},
        "fallbacks": [{"kind": "ssh", "user": "https://inventory.example.org/nodes"}],
    }


def _unions(model: type[BaseModel], seen: set) -> list[str]:
    """Every field of ``model`` (and the models inside it) whose type is a union of two or more types."""
    found: list[str] = []

    def walk(annotation, where: str) -> None:
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            if len([a for a in typing.get_args(annotation) if a is not type(None)]) > 1:
                found.append(where)
        for arg in typing.get_args(annotation):
            walk(arg, where)
        if (
            isinstance(annotation, type)
            and issubclass(annotation, BaseModel)
            and annotation not in seen
        ):
            seen.add(annotation)
            for name, info in annotation.model_fields.items():
                if info.discriminator is not None:
                    found.append(f"{annotation.__name__}.{name}")
                walk(info.annotation, f"{annotation.__name__}.{name}")

    walk(model, model.__name__)
    return found


def test_no_model_read_through_sourced_yaml_has_a_union():
    """``explain`` maps error locations to keys as they are; a union would put its member's name in
    them (``launcher.SshLauncher.host``).  A model that needs one must first teach ``explain`` that."""
    from hpcos.cluster.profiles import Profile as ClusterProfile
    from hpcos.site.specs import Package, SiteSpec

    seen: set = set()
    assert [u for model in (SiteSpec, Package, ClusterProfile) for u in _unions(model, seen)] == []
    assert len(seen) > 25
    # The check itself sees a union when there is one.
    assert _unions(pydantic.create_model("WithUnion", x=(int | list[int], 0)), set()) == [
        "WithUnion.x"
    ]
