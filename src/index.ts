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
  setAllowTF32,
  type LibTorchInfo,
} from './runtime.js';
export { createModel, Model, type StateDict } from './model.js';
export { DEFAULT_MODEL_CONFIG, type ModelConfig, type ResolvedModelConfig, type Architecture, type Stem } from './model-config.js';
export type { ModelSummary, LayerSummary, SummaryOptions } from './summary.js';
export { crossEntropy, type CrossEntropyOptions } from './loss.js';
export { Adam, type AdamOptions, type NoDecayKind } from './optim.js';
export { MultiStepSchedule, type MultiStepScheduleOptions, type HasLearningRate } from './schedule.js';
export { PRESETS, getPreset, scaleStage, type Preset, type PresetName, type StageSchedule } from './presets.js';
export { InMemoryBatches, epochOrder, type Batch, type BatchSource, type InMemoryBatchesOptions } from './batches.js';
export {
  Trainer,
  trainTwoStage,
  evaluate,
  type StageOptions,
  type EpochLog,
  type EvalMetrics,
  type TrainerCallbacks,
  type TrainerOptions,
  type TwoStageConfig,
  type TwoStageResult,
  type BatchEndInfo,
  type PartialEpoch,
} from './trainer.js';
export { saveCheckpoint, loadCheckpoint, type Checkpoint, type CheckpointMeta } from './checkpoint.js';
export { VERSION } from './version.js';
export {
  ProcessGroup,
  DataParallel,
  rendezvousFromEnv,
  distributedBackends,
  type RendezvousOptions,
  type DataParallelOptions,
  type DistributedBackend,
} from './distributed.js';
export { trainStep, evalStep, type StepResult, type TrainStepOptions, type EvalStepResult } from './step.js';
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
  type Batch as LoaderBatch,
  type DataLoaderOptions,
  type EvalLoaderOptions,
  type EpochOptions,
  type ResolvedDataLoaderOptions,
} from './data.js';
