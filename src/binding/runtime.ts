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
  cpuIsa: string;
  cpuIsaSupported: string;
}

export interface RuntimeAddon {
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  manualSeed(seed: number): void;
  setAllowTF32(on: boolean): void;
  /** Sets the given cuDNN flags (deterministic first) and returns both as they now are. */
  setCudnnFlags(options: { benchmark?: boolean; deterministic?: boolean }): { benchmark: boolean; deterministic: boolean };
  /** Sets the given fused-kernel flags; returns both as they now are, and how many fused nodes ran so far. */
  setFusionFlags(options: { cuda?: boolean; cpuReference?: boolean }): { cuda: boolean; cpuReference: boolean; bnSignNodes: number; preluNodes: number };
  /** The CUDA caching allocator's counters for one device (zeros without CUDA). */
  cudaMemoryStats(device: number): { allocatedBytes: number; peakAllocatedBytes: number; reservedBytes: number; peakReservedBytes: number };
  resetCudaPeakMemory(device: number): void;
  /** 0 off, 1 warn, 2 throw on every host-device synchronisation. */
  setCudaSyncDebugMode(mode: number): void;
  cpuRngState(): TensorHandle;
  setCpuRngState(state: TensorHandle): void;
  /** The caching CPU allocator's counters (benchmarks read them). */
  cpuCacheStats(): { cachedBytes: number; allocatedBytes: number; hits: number; misses: number };
  emptyCpuCache(): void;
}
