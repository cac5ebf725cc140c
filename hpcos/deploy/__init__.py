"""Deploy a snapshot onto a cluster: drain, point dnf at it, distro-sync, reboot, verify, resume (docs/deploy.md)."""
