// The raw binding of native/addon/distributed.cpp: c10d process groups and data parallelism. Only src/ imports it.
import type { ModelHandle } from './model.js';
import type { TensorHandle } from './tensor.js';

export interface NativeRendezvous {
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  timeoutMs: number;
  backend: 'gloo' | 'nccl';
}

export interface ProcessGroupHandle {
  rank(): number;
  worldSize(): number;
  backend(): string;
  broadcast(tensors: TensorHandle[], root: number): Promise<void>;
  allReduceSum(tensors: TensorHandle[]): Promise<void>;
  barrier(): Promise<void>;
  dispose(): void;
}

export interface DataParallelHandle {
  broadcastState(): Promise<void>;
  broadcastBuffers(): Promise<void>;
  bucketCount(): number;
  dispose(): void;
}

export interface DistributedAddon {
  joinProcessGroup(options: NativeRendezvous): Promise<ProcessGroupHandle>;
  distributedBackends(): { gloo: boolean; nccl: boolean };
  DataParallelHandle: new (model: ModelHandle, group: ProcessGroupHandle, options: { bucketCapMb?: number; broadcastBuffers?: boolean; syncBatchNorm?: boolean }) => DataParallelHandle;
}
