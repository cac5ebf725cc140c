"""Test side: the pytest plugin, cluster profiles, launchers, probes, results, baselines and tickets."""
