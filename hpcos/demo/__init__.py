"""The simulated site: the seed's cycle on this one machine, from the repository's own files (``hpcos demo``)."""
