"""Every launcher (hpcos/cluster/launchers/), written once: the name a profile's ``launcher:`` uses and the
class that runs commands and MPI jobs that way.  Profiles are validated against these names; the class is imported
only when a profile uses it."""

LAUNCHERS: dict[str, str] = {
    "local": "hpcos.cluster.launchers.local:LocalLauncher",  # this machine (a laptop, a single test node)
    "ssh": "hpcos.cluster.launchers.ssh:SshLauncher",  # ClusterShell fan-out over ssh
    "slurm": "hpcos.cluster.launchers.slurm:SlurmLauncher",  # srun/sbatch through the site's Slurm
}
