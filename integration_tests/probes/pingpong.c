/*
 * pingpong: MPI point-to-point latency and bandwidth between ranks 0 and 1.
 *
 * Output is JSON lines on rank 0, so parsers never scrape free text:
 *   {"probe": "pingpong", "ranks": N, "library": "..."}                    once, first
 *   {"size": S, "rep": R, "warmup": true|false, "iters": I, "latency_us": L, "bandwidth_MBps": B}
 * latency is half the mean round trip of I exchanges; every repetition is printed, warm-up ones
 * marked, so the harness keeps every sample (Hoefler & Belli, SC15).
 *
 * Exit 3 when started with fewer than 2 ranks: a binary run under the other MPI's launcher becomes
 * N single-rank jobs, and each of them says so here instead of "succeeding".
 *
 * usage: pingpong [-s 0,8,1024,...] [-i iters] [-r reps] [-w warmup_reps]
 */
#include "probe.h"

int main(int argc, char **argv)
{
    struct probe_options opt = {{0, 8, 64, 1024, 8192, 65536, 1048576}, 7, 1000, 5, 1};
    int rank, ranks;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);

    probe_parse_options(argc, argv, &opt);
    probe_header("pingpong", rank, ranks);
    if (ranks < 2) {
        fprintf(stderr, "pingpong: needs at least 2 ranks, got %d\n", ranks);
        MPI_Finalize();
        return 3;
    }

    long max_size = 0;
    for (int s = 0; s < opt.nsizes; s++) if (opt.sizes[s] > max_size) max_size = opt.sizes[s];
    char *buf = malloc(max_size > 0 ? max_size : 1);
    memset(buf, rank + 1, max_size > 0 ? max_size : 1);

    for (int s = 0; s < opt.nsizes; s++) {
        long size = opt.sizes[s];
        /* Fewer exchanges for large messages keep a repetition near constant time. */
        int n = size > 8192 ? (int)(opt.iters * 8192L / size) : opt.iters;
        if (n < 10) n = 10;
        for (int r = 0; r < opt.warmup + opt.reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int k = 0; k < n; k++) {
                if (rank == 0) {
                    MPI_Send(buf, (int)size, MPI_CHAR, 1, 1, MPI_COMM_WORLD);
                    MPI_Recv(buf, (int)size, MPI_CHAR, 1, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                } else if (rank == 1) {
                    MPI_Recv(buf, (int)size, MPI_CHAR, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                    MPI_Send(buf, (int)size, MPI_CHAR, 0, 1, MPI_COMM_WORLD);
                }
            }
            double elapsed = MPI_Wtime() - t0;
            if (rank == 0) {
                double latency_us = elapsed / n / 2.0 * 1e6;
                double bandwidth = latency_us > 0 ? size / latency_us : 0.0; /* bytes/us == MB/s */
                printf("{\"size\": %ld, \"rep\": %d, \"warmup\": %s, \"iters\": %d, "
                       "\"latency_us\": %.4f, \"bandwidth_MBps\": %.2f}\n",
                       size, r - opt.warmup, r < opt.warmup ? "true" : "false", n, latency_us, bandwidth);
                fflush(stdout);
            }
        }
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
