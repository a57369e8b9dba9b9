// The native model against PyTorch itself: same weights and input must give the same logits,
// loss, gradients and BatchNorm statistics (fixtures from scripts/golden/generate.py).
import { test } from 'node:test';

import { scope } from '../src/index.js';
import { assertMatchesGolden, loadFixture } from './support/fixtures.js';

const CASES = [
  'model-small-c1-stage1',
  'model-small-c1-stage2',
  'model-odd-c3-stage1',
  'model-odd-c3-stage2',
  'model-classic-imagenet-stage1',
  'model-classic-imagenet-stage2',
  'model-relu-c1-stage1',
  // The tricks ablation's switches (blockOrder, blockActivation, downsample).
  'model-bireal-relu-strided-stage1',
  'model-bireal-relu-strided-stage2',
  'model-classic-none-binary-stage1',
  'model-classic-none-binary-stage2',
  'model-bireal-classic-prelu-binary-stage1',
  'model-bireal-classic-prelu-binary-stage2',
];

for (const name of CASES) {
  test(`${name}: eval logits, train logits, loss, every gradient and running stat match PyTorch`, () => {
    scope(() => void assertMatchesGolden(name, loadFixture(name)));
  });
}
