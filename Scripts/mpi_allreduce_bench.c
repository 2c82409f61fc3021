/* MPI_Allreduce reference for Scripts/bench-vs-mpi.sh: the same sizes, repetitions and timing
 * rule as `proclip bench collectives` (a barrier, then one in-place float32 sum; a repetition
 * lasts as long as its slowest rank; the median over repetitions is reported).
 *
 * usage: mpi_allreduce_bench SIZES [WARMUP]   (SIZES: bytes, comma-separated, K/M suffixes)
 * prints per size, from rank 0: "result <bytes> <median seconds> <wrong elements>"
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long parse_size(const char *s) {
    char *end;
    long n = strtol(s, &end, 10);
    if (*end == 'K' || *end == 'k') n <<= 10;
    else if (*end == 'M' || *end == 'm') n <<= 20;
    else if (*end == 'G' || *end == 'g') n <<= 30;
    return n;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (argc < 2) {
        if (rank == 0) fprintf(stderr, "usage: %s SIZES [WARMUP]\n", argv[0]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    int warmup = argc > 2 ? atoi(argv[2]) : 2;
    char *list = strdup(argv[1]);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        long bytes = parse_size(tok), n = bytes / 4;
        /* Same sampling rule as proclip: up to 64 calls per sample for small sizes (1 MiB per
         * sample), up to 30 samples (256 MiB in all), at least 5. */
        long b = bytes > 4 ? bytes : 4;
        long calls = (1L << 20) / b;
        if (calls < 1) calls = 1;
        if (calls > 64) calls = 64;
        long reps = (256L << 20) / (b * calls);
        if (reps < 5) reps = 5;
        if (reps > 30) reps = 30;
        float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        float *source = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        for (long i = 0; i < n; i++) source[i] = (float)(rank + 1) * (float)(1 + i % 7);
        double *times = malloc((size_t)reps * sizeof(double));
        long wrong = 0;
        float total = (float)(world * (world + 1) / 2);
        for (long it = 0; it < warmup + reps; it++) {
            /* A single call's input is prepared outside the timed region; batched small calls
             * refresh theirs inside it (a copy of at most 1 MiB per sample). */
            if (calls == 1) memcpy(x, source, (size_t)n * sizeof(float));
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            for (long c = 0; c < calls; c++) {
                if (calls > 1) memcpy(x, source, (size_t)n * sizeof(float));
                MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            }
            double t = (MPI_Wtime() - t0) / (double)calls, slowest;
            MPI_Allreduce(&t, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
            if (it >= warmup) {
                times[it - warmup] = slowest;
                for (long i = 0; i < n; i++) wrong += x[i] != total * (float)(1 + i % 7);
            }
        }
        long all_wrong = 0;
        MPI_Reduce(&wrong, &all_wrong, 1, MPI_LONG, MPI_SUM, 0, MPI_COMM_WORLD);
        qsort(times, (size_t)reps, sizeof(double), by_value);
        double median = reps % 2 ? times[reps / 2] : (times[reps / 2 - 1] + times[reps / 2]) / 2;
        if (rank == 0) {
            printf("result %ld %.9f %ld\n", bytes, median, all_wrong);
            fflush(stdout);
        }
        free(x);
        free(source);
        free(times);
    }
    free(list);
    MPI_Finalize();
    return 0;
}
