"""The integration tests run with the hpcos pytest plugin (``hpcos test``); its fixtures are in harness/fixtures.py."""
