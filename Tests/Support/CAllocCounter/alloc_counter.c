// Interposes the glibc allocator for the whole test process (symbols defined in the executable
// take precedence over libc's) and counts calls while enabled. Forwards to glibc's own entry
// points, so behaviour is unchanged.
#include "alloc_counter.h"

#include <stdatomic.h>
#include <stddef.h>

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_THREAD_SANITIZER 1
#endif
#endif

#ifdef UNDER_THREAD_SANITIZER
// The thread sanitizer keeps its own heap behind its malloc interceptors: forward to those, and
// leave these functions uninstrumented (they run before the sanitizer has initialised).
extern void *__interceptor_malloc(size_t);
extern void *__interceptor_calloc(size_t, size_t);
extern void *__interceptor_realloc(void *, size_t);
extern void *__interceptor_memalign(size_t, size_t);
extern void __interceptor_free(void *);
#define __libc_malloc __interceptor_malloc
#define __libc_calloc __interceptor_calloc
#define __libc_realloc __interceptor_realloc
#define __libc_memalign __interceptor_memalign
#define __libc_free __interceptor_free
#define INTERPOSER __attribute__((disable_sanitizer_instrumentation))
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
#define INTERPOSER
#endif

static atomic_int enabled;
static atomic_uint_fast64_t count;

INTERPOSER static inline void note(void) {
    if (atomic_load_explicit(&enabled, memory_order_relaxed))
        atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

INTERPOSER void *malloc(size_t n) { note(); return __libc_malloc(n); }
INTERPOSER void *calloc(size_t a, size_t b) { note(); return __libc_calloc(a, b); }
INTERPOSER void *realloc(void *p, size_t n) { note(); return __libc_realloc(p, n); }
INTERPOSER void free(void *p) { __libc_free(p); }
INTERPOSER void *aligned_alloc(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
INTERPOSER void *memalign(size_t align, size_t n) { note(); return __libc_memalign(align, n); }
INTERPOSER int posix_memalign(void **out, size_t align, size_t n) {
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
