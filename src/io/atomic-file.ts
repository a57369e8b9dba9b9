/**
 * Crash-safe file replacement.
 *
 * A plain `writeFile` truncates the target first, so a crash or a full disk
 * mid-write leaves a half-written file where a good one used to be. These
 * helpers write a sibling temp file, flush it to disk, and only then rename it
 * over the target: readers see either the old file or the complete new one.
 *
 * @module
 */

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

/** What {@link writeFileAtomic} accepts: bytes, UTF-8 text, or byte chunks written back to back. */
export type AtomicFileData = Uint8Array | string | readonly Uint8Array[];

// A single read/write syscall is capped near 2 GiB; stay well under it.
const MAX_WRITE_CHUNK = 1 << 30;

function toChunks(data: AtomicFileData): readonly Uint8Array[] {
  if (typeof data === 'string') return [Buffer.from(data, 'utf8')];
  if (data instanceof Uint8Array) return [data];
  return data;
}

function tempPathFor(target: string): string {
  // Same directory as the target, because rename() is only atomic within one
  // file system. Dot-prefixed so a leftover from a killed process is hidden,
  // pid + random so concurrent writers never pick the same name. The base is
  // shortened so long target names cannot push the temp name past NAME_MAX.
  const base = basename(target).slice(0, 100);
  const suffix = randomBytes(6).toString('hex');
  return join(dirname(target), `.${base}.${process.pid}.${suffix}.tmp`);
}

/** Permission bits of an existing target, so replacing a file keeps its mode. */
function existingModeSync(target: string): number | undefined {
  try {
    return fs.statSync(target).mode & 0o7777;
  } catch {
    return undefined;
  }
}

async function existingMode(target: string): Promise<number | undefined> {
  try {
    return (await fsp.stat(target)).mode & 0o7777;
  } catch {
    return undefined;
  }
}

function fsyncDirSync(dir: string): void {
  // Makes the rename itself durable. Not possible everywhere (Windows refuses
  // to open directories), and the data is already safe, so failures are ignored.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort
  } finally {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // best effort
      }
    }
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, 'r');
    await handle.sync();
  } catch {
    // best effort, see fsyncDirSync
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/**
 * Atomically replaces (or creates) the file at `path` with `data`.
 *
 * The data goes to a temp file in the same directory (named from the target,
 * the pid and a random suffix), which is fsynced and then renamed over
 * `path`; the directory is then fsynced where the platform allows. Missing
 * parent directories are created. An existing target keeps its permission
 * bits. On failure the temp file is removed and the original error rethrown;
 * the previous contents of `path`, if any, are left untouched.
 *
 * @param path - File to write.
 * @param data - Bytes, a string (written as UTF-8), or byte chunks written in order.
 */
export async function writeFileAtomic(path: string, data: AtomicFileData): Promise<void> {
  const target = resolve(path);
  const dir = dirname(target);
  await fsp.mkdir(dir, { recursive: true });
  const mode = await existingMode(target);
  const tmp = tempPathFor(target);
  let handle: fsp.FileHandle | undefined;
  try {
    // 'wx' fails rather than clobbering a file that happens to have our name.
    handle = await fsp.open(tmp, 'wx');
    if (mode !== undefined) await handle.chmod(mode).catch(() => undefined);
    let position = 0;
    for (const chunk of toChunks(data)) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const length = Math.min(MAX_WRITE_CHUNK, chunk.byteLength - offset);
        const { bytesWritten } = await handle.write(chunk, offset, length, position);
        offset += bytesWritten;
        position += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, target);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
}

/**
 * Synchronous twin of {@link writeFileAtomic}, with the same guarantees.
 *
 * @param path - File to write.
 * @param data - Bytes, a string (written as UTF-8), or byte chunks written in order.
 */
export function writeFileAtomicSync(path: string, data: AtomicFileData): void {
  const target = resolve(path);
  const dir = dirname(target);
  fs.mkdirSync(dir, { recursive: true });
  const mode = existingModeSync(target);
  const tmp = tempPathFor(target);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    if (mode !== undefined) {
      try {
        fs.fchmodSync(fd, mode);
      } catch {
        // keeping the old mode is a courtesy, not a reason to fail the write
      }
    }
    let position = 0;
    for (const chunk of toChunks(data)) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const length = Math.min(MAX_WRITE_CHUNK, chunk.byteLength - offset);
        const written = fs.writeSync(fd, chunk, offset, length, position);
        offset += written;
        position += written;
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the one to report
      }
    }
    try {
      fs.rmSync(tmp, { force: true });
    } catch {
      // same as above
    }
    throw err;
  }
  fsyncDirSync(dir);
}
