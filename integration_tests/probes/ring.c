/*
 * ring: a token travels rank 0 -> 1 -> ... -> N-1 -> 0, each rank adding its rank + 1, for L laps.
 * After L laps rank 0 must hold L * N(N+1)/2; anything else is a delivery error.
 *
 *   {"probe": "ring", "ranks": N, "library": "..."}
 *   {"laps": L, "token": T, "expected": E, "ok": true|false, "lap_us": U}
 *
 * -d makes every rank receive before it sends: the classic ring deadlock.  The harness uses it to
 * show that a hung MPI job is killed at its timeout and reported as timed out.
 *
 * usage: ring [-l laps] [-d]
 */
#include "probe.h"

int main(int argc, char **argv)
{
    int rank, ranks, laps = 20, deadlock = 0;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-l") && i + 1 < argc) laps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d")) deadlock = 1;
    }
    probe_header("ring", rank, ranks);
    if (ranks < 2) {
        fprintf(stderr, "ring: needs at least 2 ranks, got %d\n", ranks);
        MPI_Finalize();
        return 3;
    }

    int next = (rank + 1) % ranks, prev = (rank + ranks - 1) % ranks;
    long token = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int lap = 0; lap < laps; lap++) {
        if (rank == 0 && !deadlock) {
            token += 1;
            MPI_Send(&token, 1, MPI_LONG, next, 0, MPI_COMM_WORLD);
            MPI_Recv(&token, 1, MPI_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else {
            MPI_Recv(&token, 1, MPI_LONG, prev, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            token += rank + 1;
            MPI_Send(&token, 1, MPI_LONG, next, 0, MPI_COMM_WORLD);
        }
    }
    double elapsed = MPI_Wtime() - t0;
    if (rank == 0) {
        long expected = (long)laps * ranks * (ranks + 1) / 2;
        printf("{\"laps\": %d, \"token\": %ld, \"expected\": %ld, \"ok\": %s, \"lap_us\": %.4f}\n",
               laps, token, expected, token == expected ? "true" : "false", elapsed / laps * 1e6);
    }
    MPI_Finalize();
    return 0;
}
