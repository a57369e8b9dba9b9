/**
 * bnn-torch: train binarized neural networks from TypeScript over LibTorch.
 * @packageDocumentation
 */
export { Tensor, type DType, type TensorData, type TensorOptions } from './core/tensor.js';
export { scope, keep } from './core/scope.js';
export { approxSign, binaryActivation, binaryActivationAsync } from './nn/binarize.js';
export type { Device } from './core/device.js';
export { isBnnError, type BnnError, type BnnErrorCode } from './errors.js';
export {
  libtorchInfo,
  cudaAvailable,
  setNumThreads,
  getNumThreads,
  manualSeed,
  liveTensorCount,
  setAllowTF32,
  setCudnnOptions,
  setFusionOptions,
  cudaMemoryStats,
  resetCudaPeakMemory,
  setCudaSyncDebugMode,
  type CudnnOptions,
  type FusionOptions,
  type CudaMemoryStats,
  type LibTorchInfo,
} from './core/runtime.js';
export { createModel, Model, type ActivationStatistics, type StateDict } from './nn/model.js';
export {
  DEFAULT_MODEL_CONFIG,
  type ModelConfig,
  type ResolvedModelConfig,
  type Architecture,
  type Stem,
  type BlockOrder,
  type BlockActivation,
  type Downsample,
  type SignGradient,
} from './nn/model-config.js';
export type { ModelSummary, LayerSummary, SummaryOptions } from './nn/summary.js';
export { drawMixup, mixImages, mixupCrossEntropy, mixupSeed, type Mixing, type StepMixup } from './train/mixup.js';
export { crossEntropy, type CrossEntropyOptions, distillationLoss, type DistillationLossOptions } from './train/loss.js';
export {
  DEFAULT_DISTILL_TEMPERATURE,
  DEFAULT_DISTILL_WEIGHT,
  checkTeacherConfig,
  loadTeacher,
  teacherConfig,
  teacherStageOptions,
  type DistillOptions,
  type TeacherTraining,
} from './train/distill.js';
export { Adam, type AdamOptions, type NoDecayKind, Optimizer, OPTIMIZER_KINDS, type OptimizerKind, SGD, type SGDOptions } from './train/optim.js';
export {
  CosineSchedule,
  type CosineScheduleOptions,
  LR_SCHEDULE_KINDS,
  type LrSchedule,
  type LrScheduleKind,
  MultiStepSchedule,
  type MultiStepScheduleOptions,
  type HasLearningRate,
  warmupFactor,
} from './train/schedule.js';
export { PRESETS, getPreset, scaleStage, type Preset, type PresetName, type StageSchedule } from './train/presets.js';
export { InMemoryBatches, epochOrder, type Batch, type BatchSource, type InMemoryBatchesOptions } from './data/batches.js';
export { Trainer, evaluate, type TrainerOptions } from './train/trainer.js';
export { oneStageOptions, trainTwoStage, type TwoStageConfig, type TwoStageResult } from './train/two-stage.js';
export { planTimeBudget, parseDuration, type TimeBudgetPlan, type TimeBudgetOptions } from './train/time-budget.js';
export type { StageOptions, EpochLog, EpochEndContext, EvalMetrics, TrainerCallbacks, BatchEndInfo, PartialEpoch } from './train/types.js';
export { saveCheckpoint, loadCheckpoint, type Checkpoint, type CheckpointMeta } from './train/checkpoint.js';
export { VERSION } from './core/version.js';
export { ProcessGroup, rendezvousFromEnv, distributedBackends, type RendezvousOptions, type DistributedBackend } from './distributed/process-group.js';
export { DataParallel, type DataParallelOptions } from './distributed/data-parallel.js';
export {
  trainStep,
  evalStep,
  StepMetrics,
  resolvePrecision,
  type Precision,
  type StepTotals,
  type StepResult,
  type TrainStepOptions,
  type StepDistillation,
  type EvalStepResult,
} from './train/step.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageTransformOptions,
  type ColorJitterOptions,
} from './image/transforms.js';
export { decodeImage, imageInfo, renderImage, type DecodedImage, type ImageInfo } from './image/decode.js';
export { prepareStore, storeInfo, type PrepareStoreOptions, type PrepareStoreResult, type StoreInfo } from './image/store.js';
export {
  Dataset,
  datasetSpec,
  type ImageDatasetOptions,
  type DatasetName,
  type DatasetSplit,
  type DatasetSpec,
  type LoadDatasetOptions,
  type DatasetFromTensorsInfo,
  type ValidationSplitOptions,
} from './data/datasets.js';
export {
  DataLoader,
  Epoch,
  type AugmentOptions,
  type Batch as LoaderBatch,
  type DataLoaderOptions,
  type EvalLoaderOptions,
  type EpochOptions,
  type ResolvedDataLoaderOptions,
} from './data/loader.js';
export {
  InferenceModel,
  inferenceIsas,
  INFER_ISAS,
  benchBinaryConv,
  exportPacked,
  INPUT_METADATA_KEY,
  CLASS_NAMES_METADATA_KEY,
  type InferIsa,
  type InputSpec,
  type InferenceModelInfo,
  type InferenceInput,
  type PredictOptions,
  type PredictResult,
  type ClassScore,
  type LoadOptions,
  type BinaryConvBenchOptions,
  type ExportPackedOptions,
  type ExportPackedResult,
} from './infer/index.js';
export {
  TensorBoardWriter,
  crc32c,
  maskedCrc32c,
  histogramOf,
  defaultHistogramLimits,
  type TensorBoardWriterOptions,
  type HistogramData,
} from './io/tensorboard.js';
export {
  WeightDiagnostics,
  snapshotWeights,
  tensorBoardCallbacks,
  checkpointWeights,
  type LayerDiagnostics,
  type WeightSnapshot,
  type WeightSnapshotOptions,
  type WeightSource,
  type HostTensor,
  type TensorBoardCallbackOptions,
} from './train/diagnostics.js';
export {
  runAblation,
  ABLATION_VARIANTS,
  type AblationOptions,
  type AblationOutcome,
  type AblationPlanOptions,
  type AblationVariant,
  type AblationResult,
  type AblationRunResult,
  type AblationRunStatus,
  type AblationVariantResult,
  type AblationDelta,
} from './ablate/index.js';
