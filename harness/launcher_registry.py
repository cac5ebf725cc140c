"""Every launcher (harness/launchers/), written once: the name a profile's ``launcher:`` uses and the
class that runs commands and MPI jobs that way.  Profiles are validated against these names; the class is imported
only when a profile uses it."""

LAUNCHERS: dict[str, str] = {
    "local": "harness.launchers.local:LocalLauncher",  # this machine (a laptop, a single test node)
    "ssh": "harness.launchers.ssh:SshLauncher",  # ClusterShell fan-out over ssh
    "slurm": "harness.launchers.slurm:SlurmLauncher",  # srun/sbatch through the site's Slurm
}
