"""The cluster: what the site's nodes are and how to reach them, below everything that acts on nodes.

Four axes, one module each, as in ReFrame's schedulers and launchers:
- ``profiles``: a cluster profile (nodes, MPI stacks, timeouts, how to reach nodes), validated;
  ``inventory``: the node classes a profile declares.
- ``schedulers``: the batch scheduler's view of the nodes (Slurm, or none): which can take a job (the
  pre-flight), draining and resuming them.
- ``launchers``: how a command or an MPI job reaches the nodes (local, ssh fan-out, srun), registered by
  name in ``registry``.
- ``mpi_errors``: what an MPI launcher's own output says about why a job failed and which host it lost.

The test harness, deploy, inventory and monitoring all reach nodes through this package only.
"""
