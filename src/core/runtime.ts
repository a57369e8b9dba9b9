import { native, readBuildRecord } from '../binding/native.js';
import { checkBoolean, checkInteger } from './check.js';
import { requireTensor, Tensor } from './tensor.js';

/** What bnn-torch runs on: the LibTorch it was built against, and the devices it can use. */
export interface LibTorchInfo {
  /** LibTorch version the addon was compiled against. */
  version: string;
  /** How the build found LibTorch (LIBTORCH, Torch_DIR, python PyTorch, cache, fetched wheel). */
  source: string;
  /** The LibTorch folder the addon loads its libraries from. */
  root: string;
  /** True when the LibTorch build has CUDA and bnn's CUDA kernels were compiled. */
  cudaBuild: boolean;
  /** True when a CUDA device can be used now. */
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  /** Intra-op threads LibTorch uses for CPU work. */
  numThreads: number;
  /**
   * The instruction set bnn-torch's own CPU kernels use: 'avx512', 'avx2' or 'baseline', the best
   * the CPU has unless the environment variable BNN_CPU_ISA caps it (to measure or test a lower path).
   */
  cpuIsa: 'avx512' | 'avx2' | 'baseline';
  /** The best instruction set this CPU has (of those three). */
  cpuIsaSupported: 'avx512' | 'avx2' | 'baseline';
}

/** Reports the LibTorch bnn-torch was built against and what it can use. */
export function libtorchInfo(): LibTorchInfo {
  const r = native().runtimeInfo();
  const record = readBuildRecord();
  return {
    version: r.torchVersion,
    source: record?.source ?? r.libtorchSource,
    root: record?.root ?? r.libtorchRoot,
    cudaBuild: r.cudaKernels,
    cudaAvailable: r.cudaAvailable,
    cudaDeviceCount: r.cudaDeviceCount,
    numThreads: r.numThreads,
    cpuIsa: r.cpuIsa as LibTorchInfo['cpuIsa'],
    cpuIsaSupported: r.cpuIsaSupported as LibTorchInfo['cpuIsa'],
  };
}

/** True when CUDA can be used. */
export function cudaAvailable(): boolean {
  return native().runtimeInfo().cudaAvailable;
}

/** Sets how many threads LibTorch uses for CPU work (process-wide). */
export function setNumThreads(threads: number): void {
  checkInteger(threads, 'threads', 1);
  native().setNumThreads(threads);
}

/** Threads LibTorch uses for CPU work. */
export function getNumThreads(): number {
  return native().runtimeInfo().numThreads;
}

/** Seeds LibTorch's random generators (CPU and CUDA), for repeatable runs. */
export function manualSeed(seed: number): void {
  checkInteger(seed, 'seed', 0);
  native().manualSeed(seed);
}

/** Native tensors currently alive (not yet disposed or collected): a leak detector for tests. */
export function liveTensorCount(): number {
  return native().liveTensors();
}

/**
 * Allows TensorFloat-32 in CUDA convolutions and matmuls (on by default, as in PyTorch): faster on
 * Ampere and newer GPUs at ~1e-3 relative precision. Turn it off to compare against float32 results.
 */
export function setAllowTF32(on: boolean): void {
  checkBoolean(on, 'setAllowTF32(on)');
  native().setAllowTF32(on);
}

/** cuDNN settings, process-wide (see {@link setCudnnOptions}). */
export interface CudnnOptions {
  /**
   * Time the candidate convolution algorithms on the first call of each shape and keep the
   * fastest. On by default in bnn-torch (PyTorch's `torch.backends.cudnn.benchmark`, which is off
   * there): training repeats the same shapes, so the search pays for itself within a few steps.
   */
  benchmark?: boolean;
  /**
   * Reproducible cuDNN algorithms only (`torch.backends.cudnn.deterministic`). Turning it on also
   * turns benchmark mode off, unless `benchmark` is given too.
   */
  deterministic?: boolean;
}

/** Sets cuDNN's flags and returns both as they now are. No effect on CPU work. */
export function setCudnnOptions(options: CudnnOptions = {}): Required<CudnnOptions> {
  if (typeof options !== 'object' || options === null) throw new TypeError('setCudnnOptions(options) must be an object');
  if (options.benchmark !== undefined) checkBoolean(options.benchmark, 'benchmark');
  if (options.deterministic !== undefined) checkBoolean(options.deterministic, 'deterministic');
  return native().setCudnnFlags(options);
}

/** Which of bnn-torch's fused kernels run (see {@link setFusionOptions}). */
export interface FusionOptions {
  /**
   * bnn-torch's fused CUDA kernels for the block's memory-bound chains: training-mode BatchNorm and
   * the sign in one node that never writes BatchNorm's output, and the residual add with PReLU in
   * one pass whose slope gradient needs no full-size temporary. On by default; off runs ATen's
   * separate ops (the same results up to float rounding), for A/B timing or to rule them out. The
   * environment variable `BNN_CUDA_FUSION=0` starts a process with it off (for `bnn train` and
   * scripts that do not call this).
   */
  cuda?: boolean;
  /**
   * A test hook: the same fused autograd nodes also run on the CPU, with ATen ops standing in for
   * the CUDA kernels, so their statistics, masks and gradients can be checked against the unfused
   * path where no GPU is. Slower than the CPU's own kernels; off by default.
   */
  cpuReference?: boolean;
}

/** Sets which fused kernels run, process-wide, and returns both flags as they now are. */
export function setFusionOptions(options: FusionOptions = {}): Required<FusionOptions> {
  if (typeof options !== 'object' || options === null) throw new TypeError('setFusionOptions(options) must be an object');
  if (options.cuda !== undefined) checkBoolean(options.cuda, 'cuda');
  if (options.cpuReference !== undefined) checkBoolean(options.cpuReference, 'cpuReference');
  const { cuda, cpuReference } = native().setFusionFlags(options);
  return { cuda, cpuReference };
}

/** The CUDA caching allocator's counters for one device, in bytes (all zero without CUDA). */
export interface CudaMemoryStats {
  /** Held by live tensors now. */
  allocatedBytes: number;
  /** The most held at once since the process started or {@link resetCudaPeakMemory}: PyTorch's `torch.cuda.max_memory_allocated`. */
  peakAllocatedBytes: number;
  /** Held from the driver by the cache now. */
  reservedBytes: number;
  peakReservedBytes: number;
}

/** Reads the CUDA memory counters of `device` (an index, default 0). */
export function cudaMemoryStats(device = 0): CudaMemoryStats {
  checkInteger(device, 'device', 0);
  return native().cudaMemoryStats(device);
}

/** Starts the peak counters of `device` afresh from what is allocated now. */
export function resetCudaPeakMemory(device = 0): void {
  checkInteger(device, 'device', 0);
  native().resetCudaPeakMemory(device);
}

/**
 * CUDA's synchronisation debug mode (`torch.cuda.set_sync_debug_mode`): `'warn'` or `'error'` on
 * every operation that makes the host wait for the GPU. Useful to prove a training loop never
 * waits between its metric reads. Needs a CUDA build (BNN_CUDA_UNAVAILABLE otherwise).
 */
export function setCudaSyncDebugMode(mode: 'off' | 'warn' | 'error'): void {
  const index = ['off', 'warn', 'error'].indexOf(mode);
  if (index < 0) throw new RangeError(`mode must be 'off', 'warn' or 'error', got ${JSON.stringify(mode)}`);
  native().setCudaSyncDebugMode(index);
}

/** @internal LibTorch's CPU generator state (a uint8 tensor), saved in checkpoints. */
export function cpuRngState(): Tensor {
  return new Tensor(native().cpuRngState());
}

/** @internal Restores a state from {@link cpuRngState}, so a resumed run draws the same numbers. */
export function setCpuRngState(state: Tensor): void {
  native().setCpuRngState(requireTensor(state, 'state').handle);
}
