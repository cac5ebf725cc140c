"""Failure classification on log texts the tools print on other systems than this one: el8's rpm 4.14
(%autosetup piping the patch through cat), mock's prefixed root.log, state.log phases, %check output.
The same classes are shown on real rpmbuild output in test_rebuild_build.py."""

from __future__ import annotations

from hpcos.rebuild.failures import FailureKind, classify, unfinished_phase

EL8_AUTOSETUP_PREP = """\
Executing(%prep): /bin/sh -e /var/tmp/rpm-tmp.Zb3Ylk
+ umask 022
+ cd /builddir/build/BUILD
+ cd /builddir/build/BUILD
+ rm -rf ucx-1.15.0
+ /usr/bin/gzip -dc /builddir/build/SOURCES/ucx-1.15.0.tar.gz
+ /usr/bin/tar -xof -
+ STATUS=0
+ '[' 0 -ne 0 ']'
+ cd ucx-1.15.0
+ /usr/bin/chmod -Rf a+rX,u+w,g-w,o-w .
+ /usr/bin/cat /builddir/build/SOURCES/0001-ucx-upstream-fix.patch
+ /usr/bin/patch -p1 -s --fuzz=0 --no-backup-if-mismatch
+ /usr/bin/cat /builddir/build/SOURCES/hpcos-hpc1-0002-ucx-ib-defaults.patch
+ /usr/bin/patch -p1 -s --fuzz=0 --no-backup-if-mismatch
2 out of 3 hunks FAILED -- saving rejects to file src/ucs/config/parser.c.rej
error: Bad exit status from /var/tmp/rpm-tmp.Zb3Ylk (%prep)


RPM build errors:
    Bad exit status from /var/tmp/rpm-tmp.Zb3Ylk (%prep)
Child return code was: 1
"""

MISSING_FILE_PREP = """\
Executing(%prep): /bin/sh -e /var/tmp/rpm-tmp.q1
+ echo 'Patch #9000 (hpcos-hpc1-0001-btl-tcp.patch):'
Patch #9000 (hpcos-hpc1-0001-btl-tcp.patch):
+ /usr/bin/patch --no-backup-if-mismatch -f -p1 --fuzz=0
can't find file to patch at input line 14
Perhaps you used the wrong -p or --strip option?
The text leading up to this was:
--------------------------
|diff --git a/opal/mca/btl/tcp/btl_tcp_component.c b/opal/mca/btl/tcp/btl_tcp_component.c
|--- a/opal/mca/btl/tcp/btl_tcp_component.c
|+++ b/opal/mca/btl/tcp/btl_tcp_component.c
--------------------------
No file to patch.  Skipping patch.
1 out of 1 hunk ignored
error: Bad exit status from /var/tmp/rpm-tmp.q1 (%prep)
"""

MOCK_ROOT_LOG = """\
INFO buildroot.py:491: Mock Version: 5.5
DEBUG util.py:446:  Executing command: ['/usr/bin/dnf-3', 'builddep', '--installroot', '/var/lib/mock/r9/root/'] \
    with env {} and shell False
DEBUG util.py:444:  No matching package to install: 'ucx-devel >= 1.15'
DEBUG util.py:444:  Not all dependencies satisfied
DEBUG util.py:444:  Error: Some packages could not be found.
DEBUG util.py:598:  Child return code was: 1
"""

CHECK_FAILURE = """\
Executing(%check): /bin/sh -e /var/tmp/rpm-tmp.c9
+ cd openmpi-4.1.1
+ make check
PASS: opal_bitmap
FAIL: opal_datatype_test
============================================================================
# TOTAL: 2
# PASS:  1
# FAIL:  1
make[3]: *** [Makefile:1342: test-suite.log] Error 1
error: Bad exit status from /var/tmp/rpm-tmp.c9 (%check)
"""

STATE_LOG = """\
2026-11-26 10:00:00,100 - Mock Version: 5.5
2026-11-26 10:00:00,101 - Start(bootstrap): init plugins
2026-11-26 10:00:00,102 - Finish(bootstrap): init plugins
2026-11-26 10:00:00,103 - Start: run
2026-11-26 10:00:00,104 - Start: chroot init
2026-11-26 10:00:03,500 - Start: dnf update
"""


def test_el8_autosetup_patch_failure_names_the_patch_and_file():
    failure = classify(EL8_AUTOSETUP_PREP)
    assert failure.kind is FailureKind.PATCH
    assert failure.patch == "hpcos-hpc1-0002-ucx-ib-defaults.patch"
    assert failure.file == "src/ucs/config/parser.c"
    assert failure.hunks == ["2 out of 3 hunks FAILED"]


def test_a_patch_for_a_missing_file_names_the_file():
    failure = classify(MISSING_FILE_PREP)
    assert failure.kind is FailureKind.PATCH
    assert (failure.patch, failure.file) == (
        "hpcos-hpc1-0001-btl-tcp.patch",
        "opal/mca/btl/tcp/btl_tcp_component.c",
    )
    assert failure.hunks == ["file to patch not found"]


def test_missing_buildrequires_from_mock_root_log():
    failure = classify("Mock Version: 5.5\n", MOCK_ROOT_LOG)
    assert failure.kind is FailureKind.BUILD_REQUIRES
    assert failure.missing == ["ucx-devel >= 1.15"]


def test_check_failure_gives_the_failing_tests_first():
    failure = classify(CHECK_FAILURE)
    assert failure.kind is FailureKind.CHECK
    assert failure.details[:2] == ["FAIL: opal_datatype_test", "# FAIL:  1"]


def test_unfinished_mock_phase_explains_an_otherwise_silent_failure():
    assert unfinished_phase(STATE_LOG) == "dnf update"
    failure = classify("", "", STATE_LOG)
    assert failure.kind is FailureKind.UNKNOWN
    assert failure.summary.startswith("build failed during mock's 'dnf update'")
