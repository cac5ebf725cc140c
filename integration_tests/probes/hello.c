/*
 * hello: the rank-count probe.  Every rank reports its host, rank 0 prints them.
 *
 *   {"probe": "hello", "ranks": N, "library": "..."}
 *   {"rank": R, "host": "node001"}          one per rank, in rank order
 *
 * The harness compares "ranks" with the count it asked for; the per-rank lines show where the
 * ranks landed (one node or several).
 */
#include "probe.h"

int main(int argc, char **argv)
{
    int rank, ranks;
    char host[MPI_MAX_PROCESSOR_NAME] = {0};
    int len = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    MPI_Get_processor_name(host, &len);
    probe_json_safe(host, len);

    char *all = rank == 0 ? calloc((size_t)ranks, MPI_MAX_PROCESSOR_NAME) : NULL;
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank == 0) {
        probe_header("hello", ranks);
        for (int r = 0; r < ranks; r++)
            printf("{\"rank\": %d, \"host\": \"%s\"}\n", r, all + (size_t)r * MPI_MAX_PROCESSOR_NAME);
        free(all);
    }
    MPI_Finalize();
    return 0;
}
