// Writing report.html into a run directory.
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic-file.js';
import { bnnError, isBnnError } from '../errors.js';
import { renderReport } from './render.js';
import { readRunDirectory } from './run-record.js';

/** File name of the report inside a run directory. */
export const REPORT_FILE_NAME = 'report.html';

/**
 * Reads a run directory and writes its report as `report.html` next to the run's files.
 *
 * The page goes to a temp file in the same directory that is then renamed over the target, so a
 * browser that has the report open (or a crash mid-write) never sees a half-written page. The
 * page heading is the directory's name.
 *
 * @param dir - The run directory written by `bnn train`.
 * @returns The absolute path of the written `report.html`.
 * @throws BnnError `BNN_IO` if the directory cannot be read or the report cannot be written.
 */
export async function writeReport(dir: string): Promise<string> {
  const absolute = resolve(dir);
  const run = readRunDirectory(absolute);
  const html = renderReport(run, { title: basename(absolute) });
  const target = join(absolute, REPORT_FILE_NAME);
  try {
    await writeFileAtomic(target, html);
  } catch (err) {
    if (isBnnError(err)) throw err;
    throw bnnError(`cannot write ${target}: ${(err as Error).message}`, 'BNN_IO');
  }
  return target;
}
