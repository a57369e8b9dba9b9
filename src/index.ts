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
export { createModel, Model, type StateDict } from './model.js';
export { DEFAULT_MODEL_CONFIG, type ModelConfig, type ResolvedModelConfig, type Architecture, type Stem } from './model-config.js';
export type { ModelSummary, LayerSummary, SummaryOptions } from './summary.js';
export { crossEntropy, type CrossEntropyOptions } from './loss.js';
export {
  Dataset,
  datasetSpec,
  type DatasetName,
  type DatasetSplit,
  type DatasetSpec,
  type LoadDatasetOptions,
  type DatasetFromTensorsInfo,
  type ValidationSplitOptions,
} from './datasets.js';
export {
  DataLoader,
  Epoch,
  type AugmentOptions,
  type Batch,
  type DataLoaderOptions,
  type EvalLoaderOptions,
  type EpochOptions,
  type ResolvedDataLoaderOptions,
} from './data.js';
