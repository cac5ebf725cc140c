"""Reading where a hung rank is from gdb's frames (captured from a real hang: rank 1 of an Open MPI job
paused in an LD_PRELOADed MPI_Init, rank 0 waiting in MPI_Gather); tests/test_tickets_real_nights.py
attaches gdb to real hung ranks."""

from __future__ import annotations

from hpcos.core.stacks import where
from hpcos.core.stacks_node import main_thread_first

RANK0 = """\
Thread 2 (Thread 0x7f6df9ea36c0 (LWP 28182) "ring-8a2ef47fa7"):
#0  0x00007f6dfa32c26f in __GI___poll (fds=0x7f6df4000b70, nfds=1, timeout=3599744) at poll.c:29
#1  0x00007f6df9f4e9b5 in ?? () from /lib/x86_64-linux-gnu/libevent_core-2.1.so.7
Thread 1 (Thread 0x7f6df9ef1740 (LWP 28148) "ring-8a2ef47fa7"):
#0  0x00007f6df9605db9 in ?? () from /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/mca_btl_vader.so
#1  0x00007f6dfa0ece1c in opal_progress () from /lib/x86_64-linux-gnu/libopen-pal.so.40
#2  0x00007f6df8a379fd in mca_pml_ob1_recv () from /usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3/mca_pml_ob1.so
#5  0x00007f6dfa48db22 in PMPI_Gather () from /lib/x86_64-linux-gnu/libmpi.so.40
#6  0x000055f22f0bf688 in probe_header.constprop ()
#7  0x000055f22f0bf26d in main ()""".splitlines()
RANK1 = """\
Thread 1 (Thread 0x7ff963b3b740 (LWP 28162) "ring-8a2ef47fa7"):
#0  0x00007ff963f4ddf2 in __libc_pause () at ../sysdeps/unix/sysv/linux/pause.c:29
#1  0x00007ff9641a8172 in MPI_Init () from /tmp/i24/hang.so
#2  0x0000557af89801bd in main ()""".splitlines()


def test_where_names_the_mpi_call_main_made_and_the_innermost_named_frame():
    assert where(RANK0) == "MPI_Gather (opal_progress)"
    assert where(RANK1) == "MPI_Init (__libc_pause)"
    assert where(["(gdb could not read the stacks: timed out)"]) == "unknown"


def test_the_main_thread_comes_first():
    ordered = main_thread_first(RANK0)
    assert ordered[0].startswith("Thread 1 ") and ordered[-3].startswith("Thread 2 ")
    assert sorted(ordered) == sorted(RANK0)
