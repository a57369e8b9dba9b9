// The raw binding of native/addon/runtime.cpp: versions, devices, threads, seeds and generator state. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

export interface RuntimeInfo {
  torchVersion: string;
  libtorchSource: string;
  libtorchRoot: string;
  cudaKernels: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  numThreads: number;
}

export interface RuntimeAddon {
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  manualSeed(seed: number): void;
  setAllowTF32(on: boolean): void;
  cpuRngState(): TensorHandle;
  setCpuRngState(state: TensorHandle): void;
  /** The caching CPU allocator's counters (benchmarks read them). */
  cpuCacheStats(): { cachedBytes: number; allocatedBytes: number; hits: number; misses: number };
  emptyCpuCache(): void;
}
