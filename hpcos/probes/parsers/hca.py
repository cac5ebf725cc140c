"""What ``ibstat`` and ``ibv_devinfo`` both describe: HCAs and their ports, in one vocabulary.

The tools spell the same state differently (``Active`` / ``PORT_ACTIVE (4)``, ``LinkUp`` /
``LINK_UP (5)``); both parsers normalise to ibstat's words, which are what a profile lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Port:
    number: int
    state: str | None = None  # Active, Down, Initializing, Armed
    physical_state: str | None = None  # LinkUp, Polling, Disabled, ...
    rate: float | None = None  # Gb/s: 100, 200, 400
    link_layer: str | None = None  # InfiniBand, Ethernet
    lid: int | None = None


@dataclass
class Hca:
    name: str  # mlx5_0
    firmware: str | None = None
    ca_type: str | None = None
    ports: list[Port] = field(default_factory=list)
