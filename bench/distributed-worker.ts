// One rank of bench/distributed.ts: data-parallel training steps of the binary ResNet-18 on a
// fixed synthetic batch (this rank's share of the global batch). Rank 0 prints one JSON line.
import { Adam, createModel, DataParallel, manualSeed, ProcessGroup, rendezvousFromEnv, setNumThreads, Tensor, trainStep } from '../src/index.js';

interface Job { width: number; inChannels: number; size: number; stage: 1 | 2; globalBatch: number; steps: number; warmup: number; threads: number }

const job = JSON.parse(process.argv[2]!) as Job;
setNumThreads(job.threads);
manualSeed(0);
const rv = rendezvousFromEnv();
const group = rv && rv.worldSize > 1 ? await ProcessGroup.join({ ...rv, backend: 'gloo' }) : undefined;
const world = group?.worldSize ?? 1;
const batch = job.globalBatch / world;
const model = createModel({ numClasses: 10, inChannels: job.inChannels, width: job.width, binaryWeights: job.stage === 2 });
// BENCH_SYNC_BN=1: SyncBatchNorm (what it costs per step).
const dp = group ? new DataParallel(model, group, { syncBatchNorm: process.env.BENCH_SYNC_BN === '1' }) : undefined;
await dp?.broadcastState();
const adam = new Adam(model, { lr: 1e-3, weightDecay: job.stage === 1 ? 1e-5 : 0 });
const x = Tensor.randn([batch, job.inChannels, job.size, job.size]);
const y = Tensor.fromArray(Array.from({ length: batch }, (_, i) => i % 10), [batch], { dtype: 'int64' });
const step = () => trainStep(model, adam, x, y, dp ? { dataParallel: dp } : {});

model.train();
for (let i = 0; i < job.warmup; i++) await step();
await group?.barrier();
const t = performance.now();
for (let i = 0; i < job.steps; i++) await step();
await group?.barrier();
const seconds = (performance.now() - t) / 1000;
if (!group || group.isMain) {
  console.log(JSON.stringify({ imagesPerSecond: (job.steps * job.globalBatch) / seconds, maxRssMiB: process.resourceUsage().maxRSS / 1024 }));
}
dp?.dispose();
group?.dispose();
