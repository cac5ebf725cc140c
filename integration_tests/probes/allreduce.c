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
    struct probe_options opt = {{8, 64, 1024, 8192, 65536}, 5, 200, 5, 1};
    int rank, ranks;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    probe_parse_options(argc, argv, &opt);
    probe_header("allreduce", rank, ranks);

    for (int s = 0; s < opt.nsizes; s++) {
        long count = opt.sizes[s] / (long)sizeof(double);
        if (count < 1) count = 1;
        double *in = malloc(count * sizeof(double)), *out = malloc(count * sizeof(double));
        for (long i = 0; i < count; i++) in[i] = rank + 1 + (double)i;
        int n = opt.sizes[s] > 8192 ? (int)(opt.iters * 8192L / opt.sizes[s]) : opt.iters;
        if (n < 5) n = 5;
        for (int r = 0; r < opt.warmup + opt.reps; r++) {
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
                       count * (long)sizeof(double), count, r - opt.warmup, r < opt.warmup ? "true" : "false", n,
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
