"""Continuous monitoring from the harness: node checks as Nagios plugins, Nagios object configuration."""
