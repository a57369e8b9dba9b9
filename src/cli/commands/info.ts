// `bnn info`: versions, the LibTorch in use and where it came from, CUDA, threads.
import type { Argv, ArgumentsCamelCase } from 'yargs';

import { distributedBackends } from '../../distributed/process-group.js';
import { libtorchInfo } from '../../core/runtime.js';
import { VERSION } from '../../core/version.js';

interface InfoArgs { json: boolean }

export const command = 'info';
export const describe = 'Show bnn-torch and LibTorch versions, where LibTorch was found, CUDA, threads and distributed backends';

export function builder(y: Argv): Argv<InfoArgs> {
  return y.option('json', { type: 'boolean', default: false }) as unknown as Argv<InfoArgs>;
}

export function handler(a: ArgumentsCamelCase<InfoArgs>): void {
  const i = libtorchInfo();
  const info = {
    bnnTorch: VERSION,
    node: process.version,
    libtorch: { version: i.version, source: i.source, root: i.root, build: i.cudaBuild ? 'CUDA' : 'CPU' },
    cuda: { available: i.cudaAvailable, devices: i.cudaDeviceCount },
    threads: i.numThreads,
    distributed: distributedBackends(),
  };
  if (a.json) {
    console.log(JSON.stringify(info, null, 2));
    return;
  }
  console.log(
    [
      `bnn-torch  ${info.bnnTorch} (Node ${info.node})`,
      `LibTorch   ${i.version} (${info.libtorch.build} build)`,
      `  found by ${i.source}`,
      `  at       ${i.root}`,
      `CUDA       ${i.cudaAvailable ? `available, ${i.cudaDeviceCount} device(s)` : 'not available'}`,
      `threads    ${i.numThreads}`,
      `distributed gloo ${info.distributed.gloo ? 'yes' : 'no (built without Gloo headers)'}, nccl ${info.distributed.nccl ? 'yes' : 'no'}`,
    ].join('\n'),
  );
}
