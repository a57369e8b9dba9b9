// The main job against the TypeScript API: the recipe's two-stage training of a double-skip
// binary ResNet-18 on Fashion-MNIST, with the loop written out. Run it with
//   node --import tsx examples/two-stage.ts            (EXAMPLE_LIMIT=2000 EXAMPLE_EPOCHS=1: quick look)
import { Adam, createModel, DataLoader, Dataset, evaluate, getPreset, MultiStepSchedule, trainStep } from 'bnn-torch';

const preset = getPreset('fashion-mnist-cpu');
const env = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined);
const data = { ...(process.env.EXAMPLE_DATA ? { root: process.env.EXAMPLE_DATA } : {}), ...(env('EXAMPLE_LIMIT') ? { limit: env('EXAMPLE_LIMIT') } : {}) };

const train = await Dataset.load('fashion-mnist', { split: 'train', ...data });
const test = await Dataset.load('fashion-mnist', { split: 'test', ...data });
const trainLoader = new DataLoader(train, { batchSize: preset.batchSize, augment: preset.augment, device: 'cpu' });
const testLoader = DataLoader.forEval(test, { batchSize: 500 });
using model = createModel({ numClasses: 10, inChannels: 1, width: preset.width });

for (const stage of [1, 2] as const) {
  // Stage 1: real weights + binary activations. Stage 2 starts from stage 1's weights with 1-bit
  // weights and a fresh Adam with its own learning rate, weight decay and schedule.
  const s = { ...(stage === 1 ? preset.stage1 : preset.stage2), ...(env('EXAMPLE_EPOCHS') ? { epochs: env('EXAMPLE_EPOCHS')! } : {}) };
  model.setBinaryWeights(stage === 2);
  using adam = new Adam(model.namedParameters(), { lr: s.lr, weightDecay: s.weightDecay });
  const schedule = new MultiStepSchedule({ baseLr: s.lr, milestones: s.milestones, gammas: s.gammas });
  for (let epoch = 0; epoch < s.epochs; epoch++) {
    const lr = schedule.step(epoch, adam);
    model.train();
    let correct = 0;
    let seen = 0;
    for await (const batch of trainLoader.epoch(epoch)) {
      using _ = batch; // frees the batch's tensors at the end of the iteration
      const r = await trainStep(model, adam, batch.images, batch.labels);
      correct += r.correct;
      seen += r.count;
      if (batch.index % 100 === 0) process.stderr.write(`\rstage ${stage} epoch ${epoch + 1}: ${seen}/${train.size} loss ${r.loss.toFixed(3)}`);
    }
    const t = await evaluate(model, testLoader);
    console.log(`\rstage ${stage} epoch ${epoch + 1}/${s.epochs}: lr ${lr.toExponential(1)}  train ${(100 * correct / seen).toFixed(2)}%  test ${(100 * t.accuracy).toFixed(2)}%`);
  }
  if (stage === 1) await model.saveWeights('stage1.safetensors');
}
await model.saveWeights('final.safetensors');
console.log(`final: ${(100 * (await evaluate(model, testLoader)).accuracy).toFixed(2)}% with 1-bit weights and activations`);
