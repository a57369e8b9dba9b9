// Training on a folder of your own images: root/<class>/<image>.jpg|.png, optionally split into
// root/train/ and root/val/ (as ImageNet is). Run it with
//   node --import tsx examples/own-images.ts ~/photos        (EXAMPLE_EPOCHS=1 EXAMPLE_SIZE=64: quick look)
// Without train/ and val/ sub-folders, a seeded tenth of the images is held out for validation.
import { Dataset, DataLoader, getPreset, trainTwoStage } from 'bnn-torch';

const root = process.argv[2];
if (!root) throw new Error('usage: examples/own-images.ts <image folder>');
const env = (k: string) => (process.env[k] ? Number(process.env[k]) : undefined);
const preset = getPreset('imagenet');
const size = env('EXAMPLE_SIZE') ?? 224;
const epochs = env('EXAMPLE_EPOCHS');

// Decoding, RandomResizedCrop, flip, ColorJitter and PCA lighting run on native decoder threads
// (one per core) while the model trains; images stream from disk, so any folder size fits.
let train = await Dataset.fromImages(root, { split: 'train', transform: { ...preset.images, size } });
let test = await Dataset.fromImages(root, { split: 'test', transform: { mode: 'eval', size } });
if (train.size === test.size) {
  // One folder, no splits: carve a validation set out of it (same files, the eval transform).
  const split = train.splitValidation({ fraction: 0.1, seed: 0 });
  const held = test.splitValidation({ fraction: 0.1, seed: 0 });
  [train, test] = [split.train, held.validation];
}
console.log(`${train.size} training and ${test.size} validation images, ${train.numClasses} classes: ${train.classNames.join(', ')}`);
if (train.skipped.length) console.log(`left out: ${train.skipped.map((s) => `${s.file} (${s.reason})`).join('; ')}`);

const stage = (s: typeof preset.stage1) => (epochs ? { ...s, epochs, milestones: [], gammas: [] } : s);
const result = await trainTwoStage({
  model: { numClasses: train.numClasses, inChannels: 3, width: 32, stem: size >= 128 ? 'imagenet' : 'small' },
  stage1: stage(preset.stage1),
  stage2: stage(preset.stage2),
  train: new DataLoader(train, { batchSize: 64 }),
  test: DataLoader.forEval(test, { batchSize: 64 }),
  outDir: 'runs/own-images',
  callbacks: { onEpochEnd: (log) => console.log(`stage ${log.stage} epoch ${log.epoch + 1}: test accuracy ${(100 * (log.testAccuracy ?? NaN)).toFixed(2)}%`) },
});
console.log(`final test accuracy ${(100 * (result.test?.accuracy ?? NaN)).toFixed(2)}%, weights in ${result.finalWeightsPath}`);
result.model.dispose();
