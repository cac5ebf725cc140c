"""What runs on the nodes and how its output is read: the MPI probes and the OSU/IMB benchmarks built
for a profile's MPI stack, the parsers of every tool's output, and the InfiniBand checks.  The harness and
the Nagios checks use the same pieces, so a night's test and a monitoring check read a node alike."""
