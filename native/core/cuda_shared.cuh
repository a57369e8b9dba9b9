#pragma once
// Shared memory in the kernel headers (native/**/*_cuda_kernels.cuh) is declared through
// BNN_SHARED(type, name, dims), which nvcc reads as `__shared__ type name dims`. The CPU emulation
// that runs those kernels in the tests (test/native/cuda-emu.h) defines it first, to fill each
// block's arrays with garbage before the block runs, as a GPU gives them no defined contents.
#ifndef BNN_SHARED
#define BNN_SHARED(type, name, dims) __shared__ type name dims
#endif
