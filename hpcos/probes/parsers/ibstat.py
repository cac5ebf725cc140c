"""``ibstat`` output (infiniband-diags): one ``CA 'name'`` block per HCA, ports indented below.

Empty output is what ibstat prints, with exit 0, when the machine has no HCA: ``parse`` returns
an empty list and the caller decides that this is a missing HCA, never a pass.
"""

from __future__ import annotations

import re

from hpcos.probes.parsers import ParseError
from hpcos.probes.parsers.hca import Hca, Port

_CA = re.compile(r"^CA\s+'(?P<name>[^']+)'")
_PORT = re.compile(r"^Port\s+(?P<n>\d+):")
_FIELD = re.compile(r"^(?P<key>[A-Za-z][A-Za-z ]*?):\s*(?P<value>.*)$")


def parse(text: str) -> list[Hca]:
    hcas: list[Hca] = []
    hca: Hca | None = None
    port: Port | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if m := _CA.match(stripped):
            hca, port = Hca(m["name"]), None
            hcas.append(hca)
            continue
        if hca is None:
            raise ParseError("ibstat", "expected a CA 'name' line first", line)
        if m := _PORT.match(stripped):
            port = Port(int(m["n"]))
            hca.ports.append(port)
            continue
        m = _FIELD.match(stripped)
        if not m:
            continue
        key, value = m["key"].lower(), m["value"].strip()
        if port is None:
            if key == "firmware version":
                hca.firmware = value
            elif key == "ca type":
                hca.ca_type = value
        elif key == "state":
            port.state = value
        elif key == "physical state":
            port.physical_state = value
        elif key == "rate":
            port.rate = float(value)
        elif key == "link layer":
            port.link_layer = value
        elif key == "base lid":
            port.lid = int(value, 0)
    return hcas
