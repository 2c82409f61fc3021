#ifndef PROCLIP_SHARED_MEMORY_H
#define PROCLIP_SHARED_MEMORY_H

#include <stdint.h>

/* Acquire loads and release stores on 64-bit words that two processes map (the ring's
   shared-memory slot counters). Swift's atomics cannot be placed on raw mapped memory. */

static inline uint64_t proclip_load_acquire_u64(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void proclip_store_release_u64(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Restricts the calling thread (and the threads it creates later) to CPUs first ..< first + count;
   0, or -errno. */
int proclip_bind_to_cpus(int first, int count);

#endif
