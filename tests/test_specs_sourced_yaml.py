"""``hpcos.core.sourced_yaml``: pydantic errors become ``file:line: field: message`` lines.

Unions are the hard part: pydantic reports one error per union member and puts the member's name
(or the discriminator's value) into the location.  These models mirror what cluster profiles use
(a launcher chosen by ``kind``) so the text an administrator reads stays readable there too.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from hpcos.core import sourced_yaml


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Local(Strict):
    kind: Literal["local"]
    slots: int = 1


class Ssh(Strict):
    kind: Literal["ssh"]
    hosts: list[str]
    user: str | None = None


class Slurm(Strict):
    kind: Literal["slurm"]
    partition: str


Launcher = Annotated[Local | Ssh | Slurm, Field(discriminator="kind")]


class Profile(Strict):
    launcher: Launcher
    fallbacks: list[Launcher] = []
    plain: Ssh | Slurm | None = None
    nodes: str | list[str] = "localhost"
    mode: Literal["fast", "full"] = "fast"


def problems(text: str) -> list[str]:
    with pytest.raises(sourced_yaml.InvalidInput) as caught:
        sourced_yaml.validate(Profile, sourced_yaml.loads(text, "profile.yaml"))
    return [str(e) for e in caught.value.errors]


def test_discriminator_value_unknown():
    assert problems("launcher:\n  kind: slrum\n  partition: debug\n") == [
        "profile.yaml:2: launcher.kind: expected one of 'local', 'ssh', 'slurm'; found 'slrum'; "
        "did you mean 'slurm'?"]


def test_discriminator_missing():
    assert problems("launcher:\n  partition: debug\n") == [
        "profile.yaml:1: launcher.kind: required field is missing; expected one of 'local', 'ssh', 'slurm'"]


def test_error_inside_the_chosen_member_has_no_member_name_in_the_field():
    assert problems("launcher:\n  kind: ssh\n  hosts: node01\n") == [
        "profile.yaml:3: launcher.hosts: expected a valid list; found 'node01'"]


def test_unknown_key_inside_a_member_suggests_that_members_keys():
    assert problems("launcher:\n  kind: slurm\n  partiton: debug\n") == [
        "profile.yaml:3: launcher.partiton: unknown key 'partiton'; did you mean 'partition'?"]


def test_discriminated_union_inside_a_list():
    assert problems("launcher: {kind: local}\nfallbacks:\n  - {kind: local}\n  - {kind: ssh, hosts: [a], "
                    "usr: me}\n") == [
        "profile.yaml:4: fallbacks[1].usr: unknown key 'usr'; did you mean 'user'?"]


def test_plain_union_of_models_reports_the_closest_member():
    """``{kind: slurm}`` fails Ssh on its kind and Slurm only on a missing key: Slurm is meant."""
    assert problems("launcher: {kind: local}\nplain:\n  kind: slurm\n") == [
        "profile.yaml:2: plain.partition: required field is missing"]


def test_plain_union_with_the_wrong_type_lists_every_accepted_type():
    assert problems("launcher: {kind: local}\nnodes: 42\n") == [
        "profile.yaml:2: nodes: expected a valid string or a valid list; found 42"]
    assert problems("launcher: {kind: local}\nplain: [ssh]\n") == [
        "profile.yaml:2: plain: expected a mapping (key: value); found ['ssh']"]


def test_choice_suggests_the_closest():
    assert problems("launcher: {kind: local}\nmode: ful\n") == [
        "profile.yaml:2: mode: expected one of 'fast', 'full'; found 'ful'; did you mean 'full'?"]


def test_every_duplicate_key_is_reported_with_its_first_line():
    with pytest.raises(sourced_yaml.InvalidInput) as caught:
        sourced_yaml.loads("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "x.yaml")
    assert [str(e) for e in caught.value.errors] == ["x.yaml:4: b.c: key given twice (first on line 3)",
                                                     "x.yaml:5: a: key given twice (first on line 1)"]


def test_allowed_keys_walks_through_unions():
    assert sourced_yaml.allowed_keys(Profile, ("launcher",)) == ["kind", "slots", "hosts", "user", "partition"]
    assert sourced_yaml.allowed_keys(Profile, ("fallbacks", 0)) == ["kind", "slots", "hosts", "user", "partition"]
    assert sourced_yaml.allowed_keys(Profile, ("mode",)) == []


def test_credentials_are_stripped_and_never_echoed():
    doc = sourced_yaml.loads("launcher:\n  kind: ssh\n  hosts: [a]\n  password: pw-4711\n"
                             "nodes: https://bob:pw-4712@inventory.example.org/nodes\n", "p.yaml")
    found = sourced_yaml.strip_credentials(Profile, doc, lambda loc: f"use ~/.netrc ({loc[0]})")
    assert [str(e) for e in found] == [
        "p.yaml:4: launcher.password: credentials do not belong in p.yaml; use ~/.netrc (launcher)",
        "p.yaml:5: nodes: URL contains a user name and password; use ~/.netrc (nodes)"]
    assert doc.data == {"launcher": {"kind": "ssh", "hosts": ["a"]},
                        "nodes": "https://inventory.example.org/nodes"}
