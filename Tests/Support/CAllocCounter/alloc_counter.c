// Interposes the glibc allocator for the whole test process (symbols defined in the executable
// take precedence over libc's) and counts calls while enabled. Forwards to glibc's own entry
// points, so behaviour is unchanged.
#include "alloc_counter.h"

#include <stdatomic.h>
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_int enabled;
static atomic_uint_fast64_t count;

static inline void note(void) {
    if (atomic_load_explicit(&enabled, memory_order_relaxed))
        atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

void *malloc(size_t n) { note(); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }
void *aligned_alloc(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
void *memalign(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
int posix_memalign(void **out, size_t align, size_t n) {
    note();
    void *p = __libc_memalign(align, n);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void alloc_counter_start(void) {
    atomic_store(&count, 0);
    atomic_store(&enabled, 1);
}

uint64_t alloc_counter_stop(void) {
    atomic_store(&enabled, 0);
    return atomic_load(&count);
}
