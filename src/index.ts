/**
 * bnn-torch: train binarized neural networks from TypeScript over LibTorch.
 * @packageDocumentation
 */
export { Tensor, type DType, type TensorData, type TensorOptions } from './tensor.js';
export { scope, keep } from './scope.js';
export { binaryActivation, binaryActivationAsync } from './binarize.js';
export type { Device } from './device.js';
export { isBnnError, type BnnError, type BnnErrorCode } from './errors.js';
export {
  libtorchInfo,
  cudaAvailable,
  setNumThreads,
  getNumThreads,
  manualSeed,
  liveTensorCount,
  type LibTorchInfo,
} from './runtime.js';
