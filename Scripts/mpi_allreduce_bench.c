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
        /* Same repetition rule as proclip: from 5 at 64 MiB up to 200 for small sizes. */
        long reps = bytes > 0 ? (512L << 20) / bytes : 200;
        if (reps < 5) reps = 5;
        if (reps > 200) reps = 200;
        float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        double *times = malloc((size_t)reps * sizeof(double));
        long wrong = 0;
        float total = (float)(world * (world + 1) / 2);
        for (long it = 0; it < warmup + reps; it++) {
            for (long i = 0; i < n; i++) x[i] = (float)(rank + 1) * (float)(1 + i % 7);
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double t = MPI_Wtime() - t0, slowest;
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
        free(times);
    }
    free(list);
    MPI_Finalize();
    return 0;
}
