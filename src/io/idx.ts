// IDX files (MNIST, Fashion-MNIST), read in TypeScript for the commands that must not load the
// LibTorch addon (bnn predict). The training readers are native (native/data/idx.cpp).
import fs from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';

import { bnnError } from '../errors.js';

/** The largest IDX file read (inflated): 2 GiB, far above any MNIST-style set. */
const MAX_BYTES = 2 ** 31;

/** An unsigned-byte IDX array. */
export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/**
 * Reads an IDX file of unsigned bytes (magic 0x00000801 / 0x00000803...), raw or gzipped (by its
 * content, not its name). A truncated, oversized or non-byte file is a BNN_IO error naming it.
 */
export async function readIdx(file: string): Promise<IdxArray> {
  let bytes: Uint8Array = await fs.readFile(file);
  const bad = (why: string) => bnnError(`${file}: not a valid IDX file: ${why}`, 'BNN_IO');
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes, { maxOutputLength: MAX_BYTES });
    } catch (e) {
      if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw bad(`it inflates to more than ${MAX_BYTES / 2 ** 30} GiB`);
      throw bad(`its gzip stream is corrupt (${(e as Error).message})`);
    }
  }
  if (bytes.length < 4) throw bad('shorter than its 4-byte magic number');
  if (bytes[0] !== 0 || bytes[1] !== 0) throw bad('the magic number does not start with two zero bytes');
  if (bytes[2] !== 0x08) throw bad(`element type 0x${bytes[2]!.toString(16)} is not unsigned byte (0x08)`);
  const rank = bytes[3]!;
  if (rank < 1 || rank > 4) throw bad(`rank ${rank} (1 to 4 expected)`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) throw bad('truncated inside its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - header !== count) throw bad(`shape [${shape.join(', ')}] needs ${count} bytes of data, the file holds ${bytes.length - header}`);
  return { shape, data: bytes.subarray(header) };
}
