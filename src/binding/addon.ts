// The raw binding's shape, exactly as native/addon/ exports it: one interface per binding file
// (src/binding/<c>.ts mirrors native/addon/<c>.cpp). Only src/ files import these; users see the
// typed classes built on top of them.
import type { BinarizeAddon } from './binarize.js';
import type { DataAddon } from './data.js';
import type { DistributedAddon } from './distributed.js';
import type { ImageAddon } from './image.js';
import type { LossAddon } from './loss.js';
import type { MixupAddon } from './mixup.js';
import type { ModelAddon } from './model.js';
import type { RuntimeAddon } from './runtime.js';
import type { TensorAddon } from './tensor.js';
import type { TrainAddon } from './train.js';

export type * from './binarize.js';
export type * from './data.js';
export type * from './distributed.js';
export type * from './image.js';
export type * from './loss.js';
export type * from './mixup.js';
export type * from './model.js';
export type * from './runtime.js';
export type * from './tensor.js';
export type * from './train.js';

/** Everything the addon exports. */
export interface Addon extends TensorAddon, RuntimeAddon, BinarizeAddon, LossAddon, MixupAddon, ModelAddon, TrainAddon, DataAddon, DistributedAddon, ImageAddon {}
