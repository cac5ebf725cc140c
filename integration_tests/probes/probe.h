/*
 * probe.h: what every hpcos MPI probe shares.
 *
 * Each probe prints JSON lines on rank 0, the first one a header naming the probe and the rank
 * count MPI_Comm_size reported, so the harness can tell a real N-rank job from N single-rank
 * jobs started by the wrong launcher (each of which prints its own header with "ranks": 1), and the
 * host of every rank, so it can tell whether the ranks span the nodes it selected.
 */
#ifndef HPCOS_PROBE_H
#define HPCOS_PROBE_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Make text safe to print between JSON quotes: first line only, no quotes, backslashes or controls. */
static inline void probe_json_safe(char *text, int len)
{
    for (int i = 0; i < len && text[i]; i++) {
        if (text[i] == '\n' || text[i] == '\r') { text[i] = '\0'; break; }
        if (text[i] == '"' || text[i] == '\\' || (unsigned char)text[i] < 32) text[i] = ' ';
    }
}

/* Where this rank runs: the node name the resource manager knows it by (Slurm's SLURMD_NODENAME,
 * which differs from the hostname when several slurmd share a host), else MPI_Get_processor_name. */
#define PROBE_HOST_MAX MPI_MAX_PROCESSOR_NAME
static inline void probe_host(char *host)
{
    int len = 0;
    const char *slurm_node = getenv("SLURMD_NODENAME");
    memset(host, 0, PROBE_HOST_MAX);
    if (slurm_node && *slurm_node) {
        strncpy(host, slurm_node, PROBE_HOST_MAX - 1);
        len = (int)strlen(host);
    }
    else MPI_Get_processor_name(host, &len);
    probe_json_safe(host, len);
}

/* Collective: every rank sends its host; rank 0 prints the header with the hosts in rank order, so
 * the harness sees where the ranks ran (all on one node, or spread as the profile says). */
static inline void probe_header(const char *probe, int rank, int ranks)
{
    char host[PROBE_HOST_MAX];
    probe_host(host);
    char *all = rank == 0 ? calloc((size_t)ranks, PROBE_HOST_MAX) : NULL;
    MPI_Gather(host, PROBE_HOST_MAX, MPI_CHAR, all, PROBE_HOST_MAX, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank != 0)
        return;
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    probe_json_safe(version, len);
    printf("{\"probe\": \"%s\", \"ranks\": %d, \"library\": \"%s\", \"hosts\": [", probe, ranks, version);
    for (int r = 0; r < ranks; r++)
        printf("%s\"%s\"", r ? ", " : "", all + (size_t)r * PROBE_HOST_MAX);
    printf("]}\n");
    fflush(stdout);
    free(all);
}

/* Options of the timed probes: message sizes, exchanges per repetition, repetitions, warm-up ones. */
#define PROBE_MAX_SIZES 64
struct probe_options {
    long sizes[PROBE_MAX_SIZES];
    int nsizes, iters, reps, warmup;
};

/* -s 0,8,1024  -i iters  -r reps  -w warmup_reps; anything not given keeps the caller's default. */
static inline void probe_parse_options(int argc, char **argv, struct probe_options *opt)
{
    for (int i = 1; i < argc - 1; i++) {
        if (!strcmp(argv[i], "-s")) {
            int n = 0;
            char *copy = strdup(argv[++i]), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok && n < PROBE_MAX_SIZES; tok = strtok_r(NULL, ",", &save))
                opt->sizes[n++] = atol(tok);
            free(copy);
            opt->nsizes = n;
        }
        else if (!strcmp(argv[i], "-i")) opt->iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r")) opt->reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-w")) opt->warmup = atoi(argv[++i]);
    }
}

#endif
