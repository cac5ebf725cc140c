"""Ticket filing for failing integration tests: fingerprint -> group -> content -> lifecycle -> tracker.

Data flows one way: ``RunResults`` are grouped by fingerprint (``grouping``), each group becomes
an action (``lifecycle.plan``), actions are applied to a tracker backend (``lifecycle.apply``),
and what cannot be sent waits in the on-disk ``queue``.
"""
