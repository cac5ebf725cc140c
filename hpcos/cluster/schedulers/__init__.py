"""Batch schedulers: the scheduler's view of the nodes, apart from how commands reach them.

``slurm`` reads node states (``sinfo``) for the pre-flight and drains and resumes nodes for deploy.
A profile without a scheduler (``launcher: local`` or ``ssh`` with ``deploy.drain: none``) has no
node states to read: its pre-flight is the launcher's own reachability probe.
"""
