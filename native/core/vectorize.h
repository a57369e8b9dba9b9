#pragma once
// Hot elementwise loops are compiled for AVX-512 and AVX2 besides the baseline and picked at run
// time (GCC function multiversioning), so the build needs no -march flag and runs anywhere.
#define BNN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
