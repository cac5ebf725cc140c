"""``ibv_devinfo`` (and ``ibv_devinfo -v``) output: ``hca_id:`` blocks with ``port:`` sub-blocks.

States are normalised to ibstat's words.  The rate is only printed with ``-v`` (``active_width``
times ``active_speed``); without it ``rate`` stays None and a rate check must use ibstat.
"""

from __future__ import annotations

import re

from hpcos.probes.parsers import ParseError
from hpcos.probes.parsers.hca import Hca, Port

_STATES = {
    "PORT_ACTIVE": "Active",
    "PORT_DOWN": "Down",
    "PORT_INIT": "Initializing",
    "PORT_ARMED": "Armed",
    "PORT_ACTIVE_DEFER": "ActiveDefer",
}
_PHYS = {
    "LINK_UP": "LinkUp",
    "POLLING": "Polling",
    "DISABLED": "Disabled",
    "SLEEP": "Sleep",
    "PORT_CONFIGURATION_TRAINING": "PortConfigurationTraining",
    "LINK_ERROR_RECOVERY": "LinkErrorRecovery",
    "PHY_TEST": "PhyTest",
}
_LINE = re.compile(r"^(?P<key>[a-z_]+):\s*(?P<value>.*)$")


def parse(text: str) -> list[Hca]:
    hcas: list[Hca] = []
    hca: Hca | None = None
    port: Port | None = None
    width = speed = None
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        key, value = m["key"], m["value"].strip()
        if key == "hca_id":
            hca, port = Hca(value), None
            hcas.append(hca)
            continue
        if hca is None:
            raise ParseError("ibv_devinfo", "expected an hca_id line first", line)
        if key == "port":
            port = Port(int(value))
            hca.ports.append(port)
            width = speed = None
        elif port is None:
            if key == "fw_ver":
                hca.firmware = value
            elif key == "board_id":
                hca.ca_type = value
        elif key == "state":
            port.state = _word(value, _STATES)
        elif key == "phys_state":
            port.physical_state = _word(value, _PHYS)
        elif key == "link_layer":
            port.link_layer = value
        elif key == "port_lid":
            port.lid = int(value, 0)
        elif key == "active_width":
            width = int(re.match(r"(\d+)", value)[1])  # "4X (2)"
        elif key == "active_speed":
            speed = float(re.match(r"([\d.]+)", value)[1])  # "50.0 Gbps (64)"
        if port is not None and width and speed and key in ("active_width", "active_speed"):
            port.rate = width * speed
    return hcas


def _word(value: str, table: dict[str, str]) -> str:
    symbol = value.split()[0]  # "PORT_ACTIVE (4)"
    return table.get(symbol, symbol)
