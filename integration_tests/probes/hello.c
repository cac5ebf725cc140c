/*
 * hello: the rank-count and placement probe.  Every rank reports its host, rank 0 prints them.
 *
 *   {"probe": "hello", "ranks": N, "library": "...", "hosts": ["node001", "node002"]}
 *   {"rank": R, "host": "node001"}          one per rank, in rank order
 *
 * The harness compares "ranks" with the count it asked for and the hosts with the nodes it
 * selected (hpcos.probes.parsers.probe.ProbeOutput.placement_problem).
 */
#include "probe.h"

int main(int argc, char **argv)
{
    int rank, ranks;
    char host[PROBE_HOST_MAX];

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    probe_header("hello", rank, ranks);
    probe_host(host);

    char *all = rank == 0 ? calloc((size_t)ranks, PROBE_HOST_MAX) : NULL;
    MPI_Gather(host, PROBE_HOST_MAX, MPI_CHAR, all, PROBE_HOST_MAX, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        for (int r = 0; r < ranks; r++)
            printf("{\"rank\": %d, \"host\": \"%s\"}\n", r, all + (size_t)r * PROBE_HOST_MAX);
        free(all);
    }
    MPI_Finalize();
    return 0;
}
