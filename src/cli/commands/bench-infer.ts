// `bnn bench-infer`: the packed engine's speed on this machine, per instruction set: a packed
// model's latency at given batch sizes, or (without --model) one binary 3x3 convolution at
// ResNet-18's shapes. Engine only, LibTorch is not loaded; bench/infer.ts (npm run bench:infer)
// puts PyTorch beside it.
import { availableParallelism } from 'node:os';

import type { Argv, ArgumentsCamelCase } from 'yargs';

import { benchBinaryConv, INFER_ISAS, InferenceModel, inferenceIsas, type InferIsa } from '../../infer/inference-model.js';
import { numberList, UsageError } from '../common.js';

interface BenchInferArgs { model?: string; batch: string; threads: number; size?: number; seconds: number; isa?: InferIsa }

export const command = 'bench-infer';
export const describe = "Measure the packed engine's speed on this CPU, per instruction set (a packed model, or one binary conv at ResNet-18's shapes)";

export function builder(y: Argv): Argv<BenchInferArgs> {
  return y
    .option('model', { type: 'string', describe: 'packed model (bnn export --packed); default: binary convolutions at ResNet-18 shapes' })
    .option('batch', { type: 'string', default: '1,16', describe: 'batch sizes, comma-separated' })
    .option('size', { type: 'number', describe: "input side in pixels (default: the model's, else 224)" })
    .option('threads', { type: 'number', default: availableParallelism(), defaultDescription: 'the cores this process may use' })
    .option('seconds', { type: 'number', default: 1, describe: 'time spent per measurement' })
    .option('isa', { type: 'string', choices: INFER_ISAS, describe: 'one instruction set only (default: every one this CPU has)' }) as unknown as Argv<BenchInferArgs>;
}

export async function handler(a: ArgumentsCamelCase<BenchInferArgs>): Promise<void> {
  const batches = numberList(a.batch, '--batch') ?? [1];
  if (batches.some((b) => !Number.isInteger(b) || b < 1)) throw new UsageError(`--batch: positive integers, got ${a.batch}`);
  const isas = inferenceIsas();
  const list = a.isa ? [a.isa] : isas.supported;
  console.log(`engine instruction sets on this CPU: ${isas.supported.join(', ')} (best ${isas.best}); ${a.threads} thread(s)`);
  if (a.model) {
    using model = await InferenceModel.load(a.model, { threads: a.threads });
    const { inChannels } = model.info;
    const side = a.size ?? model.info.input?.height ?? 224;
    console.log(`${a.model}: width ${model.info.width}, ${model.info.stem} stem, ${inChannels}x${side}x${side} input`);
    for (const isa of list) {
      for (const b of batches) {
        const input = { data: new Float32Array(b * inChannels * side * side).map(() => Math.random() * 2 - 1), shape: [b, inChannels, side, side] as const };
        await model.predict(input, { isa, batchSize: b });
        let calls = 0;
        const t = performance.now();
        while (performance.now() - t < a.seconds * 1000 || calls < 2) {
          await model.predict(input, { isa, batchSize: b });
          calls++;
        }
        const s = (performance.now() - t) / 1000 / calls;
        console.log(`  ${isa.padEnd(9)} batch ${String(b).padStart(4)}: ${(1000 * s).toFixed(2).padStart(9)} ms  ${(b / s).toFixed(0).padStart(8)} images/s`);
      }
    }
    return;
  }
  const shapes: [number, number, number, 1 | 2][] = [[64, 64, 56, 1], [128, 128, 28, 1], [256, 256, 14, 1], [512, 512, 7, 1], [64, 128, 56, 2]];
  for (const isa of list) {
    for (const [c, o, s, st] of shapes) {
      for (const b of batches) {
        const probe = await benchBinaryConv({ inChannels: c, outChannels: o, height: s, width: s, stride: st, batch: b, threads: a.threads, isa, iterations: 2 });
        const iterations = Math.max(2, Math.round(a.seconds / Math.max(probe.seconds, 1e-6)));
        const r = await benchBinaryConv({ inChannels: c, outChannels: o, height: s, width: s, stride: st, batch: b, threads: a.threads, isa, iterations });
        const gops = (2 * c * o * 9 * (s / st) * (s / st) * b) / r.seconds / 1e9;
        console.log(`  ${isa.padEnd(9)} ${`${c}→${o} @ ${s} /${st}`.padEnd(18)} batch ${String(b).padStart(3)}: ${(1000 * r.seconds).toFixed(3).padStart(9)} ms  ${gops.toFixed(0).padStart(6)} binary GOPS`);
      }
    }
  }
}
