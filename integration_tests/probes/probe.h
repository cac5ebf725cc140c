/*
 * probe.h: what every hpcos MPI probe shares.
 *
 * Each probe prints JSON lines on rank 0, the first one a header naming the probe and the rank
 * count MPI_Comm_size reported, so the harness can tell a real N-rank job from N single-rank
 * jobs started by the wrong launcher (each of which prints its own header with "ranks": 1).
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

static inline void probe_header(const char *probe, int ranks)
{
    char version[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(version, &len);
    probe_json_safe(version, len);
    printf("{\"probe\": \"%s\", \"ranks\": %d, \"library\": \"%s\"}\n", probe, ranks, version);
    fflush(stdout);
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
