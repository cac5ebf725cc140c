"""The fixtures' slurm.conf comes from the one writer, the demo's (``hpcos.demo.cluster``): everything
private to one directory, munge through a private socket, no cgroups, no accounting (the recipe that
starts on a plain Debian 12 host).  Each fixture says only what differs: its nodes and partition."""

from __future__ import annotations

from hpcos.demo.cluster import write_slurm_conf

__all__ = ["write_slurm_conf"]
