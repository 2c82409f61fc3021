#pragma once
#include <stdint.h>

/// Starts counting heap allocations made by any thread of this process.
void alloc_counter_start(void);
/// Stops counting and returns how many allocations were made since `alloc_counter_start`.
uint64_t alloc_counter_stop(void);
