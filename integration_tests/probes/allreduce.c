/*
 * allreduce: MPI_Allreduce(SUM) of doubles, checked element by element, and timed.
 *
 *   {"probe": "allreduce", "ranks": N, "library": "..."}
 *   {"size": BYTES, "count": C, "rep": R, "warmup": bool, "iters": I, "latency_us": L, "errors": E}
 *
 * Rank r contributes r + 1 + i at element i, so every element of the result must equal
 * N(N+1)/2 + N*i exactly (small integers are exact in doubles); "errors" counts those that do not,
 * over all ranks.  Latency is the mean over I calls; every repetition is printed, warm-up marked.
 *
 * usage: allreduce [-s 8,1024,...] [-i iters] [-r reps] [-w warmup_reps]
 */
#include "probe.h"

int main(int argc, char **argv)
{
    long sizes[64] = {8, 64, 1024, 8192, 65536};
    int nsizes = 5, iters = 200, reps = 5, warmup = 1;
    int rank, ranks;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "-s")) nsizes = probe_parse_sizes(argv[++i], sizes, 64);
        else if (!strcmp(argv[i], "-i")) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-w")) warmup = atoi(argv[++i]);
    }
    if (rank == 0) probe_header("allreduce", ranks);

    for (int s = 0; s < nsizes; s++) {
        long count = sizes[s] / (long)sizeof(double);
        if (count < 1) count = 1;
        double *in = malloc(count * sizeof(double)), *out = malloc(count * sizeof(double));
        for (long i = 0; i < count; i++) in[i] = rank + 1 + (double)i;
        int n = sizes[s] > 8192 ? (int)(iters * 8192L / sizes[s]) : iters;
        if (n < 5) n = 5;
        for (int r = 0; r < warmup + reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (int k = 0; k < n; k++)
                MPI_Allreduce(in, out, (int)count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            double elapsed = MPI_Wtime() - t0;
            long errors = 0, total = 0;
            double base = ranks * (ranks + 1) / 2.0;
            for (long i = 0; i < count; i++)
                if (out[i] != base + (double)ranks * i) errors++;
            MPI_Reduce(&errors, &total, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
            if (rank == 0) {
                printf("{\"size\": %ld, \"count\": %ld, \"rep\": %d, \"warmup\": %s, \"iters\": %d, "
                       "\"latency_us\": %.4f, \"errors\": %ld}\n",
                       count * (long)sizeof(double), count, r - warmup, r < warmup ? "true" : "false", n,
                       elapsed / n * 1e6, total);
                fflush(stdout);
            }
        }
        free(in);
        free(out);
    }
    MPI_Finalize();
    return 0;
}
