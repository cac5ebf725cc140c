"""An RPM's Epoch, Version and Release, ordered by rpm's own rule (``rpm.labelCompare``)."""

from __future__ import annotations

from dataclasses import dataclass

import rpm


@dataclass(frozen=True, order=False)
class Evr:
    epoch: int
    version: str
    release: str

    @classmethod
    def parse(cls, text: str) -> Evr:
        """``[E:]V-R``, as rpm prints it."""
        epoch, _, rest = text.rpartition(":")
        version, _, release = rest.rpartition("-")
        if not version or not release:
            raise ValueError(f"not an EVR (expected [E:]VERSION-RELEASE): {text!r}")
        return cls(int(epoch or 0), version, release)

    def compare(self, other: Evr) -> int:
        """-1, 0 or 1, by rpm's own rule."""
        return rpm.labelCompare(
            (str(self.epoch), self.version, self.release),
            (str(other.epoch), other.version, other.release),
        )

    def __lt__(self, other: Evr) -> bool:
        return self.compare(other) < 0

    def __gt__(self, other: Evr) -> bool:
        return self.compare(other) > 0

    def __str__(self) -> str:
        return (
            f"{self.epoch}:{self.version}-{self.release}"
            if self.epoch
            else f"{self.version}-{self.release}"
        )
