"""The suite's kinds keep their word (tests/conftest.py): a test of the unit kind that starts a
process, in its set-up or its body, fails and names the list its module belongs in; the same test
in a module of the integration kind passes.  Run in a child pytest with the project's own hooks."""

from __future__ import annotations

from conftest import REPO

CONFTEST = f"""
import importlib.util

_spec = importlib.util.spec_from_file_location("hpcos_suite_conftest", {str(REPO / "tests" / "conftest.py")!r})
_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_suite)
pytest_configure = _suite.pytest_configure
pytest_collection_modifyitems = _suite.pytest_collection_modifyitems
pytest_runtest_setup = _suite.pytest_runtest_setup
pytest_runtest_call = _suite.pytest_runtest_call
"""

TESTS = """
import subprocess
import pytest

@pytest.fixture
def started():
    subprocess.run(["true"], check=True)

def test_pure():
    assert sorted([3, 1, 2]) == [1, 2, 3]

def test_starts_in_its_body():
    subprocess.run(["true"], check=True)

def test_starts_in_its_fixture(started):
    pass
"""


def test_a_unit_test_that_starts_a_process_fails_naming_where_it_belongs(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_quick=TESTS)
    result = pytester.runpytest_subprocess("-m", "unit", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*a unit test started a process in its set-up (subprocess.Popen*add test_quick*",
            "*a unit test started a process in its call (subprocess.Popen*'true'*add test_quick "
            "to INTEGRATION_MODULES in tests/conftest.py*",
        ]
    )


def test_the_same_tests_in_an_integration_module_pass(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_runner=TESTS)  # a module the integration list names
    result = pytester.runpytest_subprocess("-m", "integration", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
