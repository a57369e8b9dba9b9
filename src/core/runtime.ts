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

/** @internal LibTorch's CPU generator state (a uint8 tensor), saved in checkpoints. */
export function cpuRngState(): Tensor {
  return new Tensor(native().cpuRngState());
}

/** @internal Restores a state from {@link cpuRngState}, so a resumed run draws the same numbers. */
export function setCpuRngState(state: Tensor): void {
  native().setCpuRngState(requireTensor(state, 'state').handle);
}
