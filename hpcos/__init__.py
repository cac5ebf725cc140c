"""hpcos: keep your own Linux OS on an HPC cluster (see README.md and docs/architecture.md)."""

__version__ = "0.1.0"
