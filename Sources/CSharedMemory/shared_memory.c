#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include "shared_memory.h"

int proclip_bind_to_cpus(int first, int count) {
    if (first < 0 || count < 1 || first + count > CPU_SETSIZE) return -EINVAL;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int cpu = first; cpu < first + count; cpu++) CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0 ? 0 : -errno;
}
