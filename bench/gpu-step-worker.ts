// bnn-torch's side of bench/gpu-step.ts: one process per case, measuring in turn bfloat16, bfloat16
// with the fused CUDA kernels off (ATen's separate ops: what the fusion gains), bfloat16 captured in
// a CUDA graph, float32 and float32 with a host read every step (the old way). Each variant builds its own model,
// optimizer and batch and frees them before the next, so each peak GPU memory (max allocated since
// a reset) is that variant's own. The step is the Trainer's on CUDA: sync-free (StepMetrics read
// at the end), fused Adam, channels-last, cuDNN benchmark mode. Prints one JSON line per variant
// as it ends ({ variant, result }), so a variant that kills the process (a CUDA error poisons the
// context) loses only itself: bench/gpu-step.ts starts a new worker for the variants after it.
//   node --import tsx bench/gpu-step-worker.ts '<case JSON>' [bf16,fp32,...]
import { Adam, createModel, cudaMemoryStats, libtorchInfo, manualSeed, resetCudaPeakMemory, setFusionOptions, StepMetrics, Tensor, trainStep, type Precision } from '../src/index.js';
import { native } from '../src/binding/native.js';

interface Case { size: number; stem: 'small' | 'imagenet'; classes: number; stage: 1 | 2; batch: number; steps: number; warmup: number; width?: number }
interface Variant { name: string; precision: Precision; sync: boolean; fused?: boolean; graph?: boolean }

const cfg = JSON.parse(process.argv[2]!) as Case;
const allVariants: Variant[] = [
  { name: 'bf16', precision: 'bfloat16', sync: false },
  { name: 'bf16Unfused', precision: 'bfloat16', sync: false, fused: false },
  // The step captured in a CUDA graph (cudaGraph): the warm-up covers its three ordinary steps and the capture.
  { name: 'bf16Graph', precision: 'bfloat16', sync: false, graph: true },
  { name: 'fp32', precision: 'float32', sync: false },
  { name: 'fp32Synced', precision: 'float32', sync: true },
];
const chosen = process.argv[3]?.split(',');
const variants = chosen ? allVariants.filter((v) => chosen.includes(v.name)) : allVariants;
if (chosen && variants.length !== chosen.length) throw new Error(`unknown variant in ${process.argv[3]}; known: ${allVariants.map((v) => v.name).join(', ')}`);
console.log(JSON.stringify({ torch: libtorchInfo().version }));
for (const v of variants) {
  manualSeed(0);
  setFusionOptions({ cuda: v.fused ?? true });
  const nodesBefore = native().setFusionFlags({});
  using model = createModel({ numClasses: cfg.classes, inChannels: 3, width: cfg.width ?? 64, stem: cfg.stem, binaryWeights: cfg.stage === 2 }).to('cuda');
  using adam = new Adam(model, { lr: 1e-3, weightDecay: cfg.stage === 1 ? 1e-5 : 0 });
  using x = Tensor.randn([cfg.batch, 3, cfg.size, cfg.size], { device: 'cuda' });
  using y = Tensor.fromArray(Array.from({ length: cfg.batch }, (_, i) => i % cfg.classes), [cfg.batch], { dtype: 'int64', device: 'cuda' });
  using metrics = new StepMetrics();
  const step = () => trainStep(model, adam, x, y, { precision: v.precision, ...(v.sync ? {} : { metrics }), ...(v.graph ? { cudaGraph: true } : {}) });
  const graphsBefore = native().stepGraphCounts();
  model.train();
  let t = performance.now();
  for (let i = 0; i < cfg.warmup; i++) await step();
  await metrics.read();
  const warmupSeconds = (performance.now() - t) / 1000;
  resetCudaPeakMemory();
  metrics.reset();
  t = performance.now();
  let last = NaN;
  for (let i = 0; i < cfg.steps; i++) last = (await step()).loss;
  // Sync-free: this read waits for the queued steps. Synced: every step ended with a read.
  const totals = await metrics.read();
  const seconds = (performance.now() - t) / 1000;
  // Fused nodes a step (0 with the fusion off): proof of which path was timed.
  const nodesAfter = native().setFusionFlags({});
  const stepsRun = cfg.warmup + cfg.steps;
  const result = {
    imagesPerSecond: (cfg.steps * cfg.batch) / seconds,
    peakMiB: cudaMemoryStats().peakAllocatedBytes / 2 ** 20,
    warmupSeconds,
    loss: v.sync ? last : totals.lossSum / totals.count,
    // Counted when a step builds its graph: a replayed step runs the fused nodes captured once.
    fusedNodesPerStep: {
      bnSign: (nodesAfter.bnSignNodes - nodesBefore.bnSignNodes) / stepsRun,
      prelu: (nodesAfter.preluNodes - nodesBefore.preluNodes) / stepsRun,
    },
    graphReplays: native().stepGraphCounts().replays - graphsBefore.replays,
  };
  console.log(JSON.stringify({ variant: v.name, result }));
}
