// `bnn train --nproc N`: starts N copies of this very command as the ranks of one process group,
// with torchrun's rendezvous variables on loopback, and turns their exits into one result.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';

/** Set in the workers, so that they train instead of launching again. */
export const WORKER_ENV = 'BNN_LAUNCHED_RANK';

/** A TCP port that was free on loopback a moment ago (for a rendezvous). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface LaunchOptions {
  nproc: number;
  /** Threads per worker; default: the cores divided among the workers (CPU) or left alone (CUDA). */
  threadsPerWorker?: number;
  /** Seconds the others get to stop after one worker failed, before they are killed. */
  graceSeconds?: number;
}

/**
 * Runs the workers and resolves with the exit code for the launcher: 0 when all succeeded,
 * otherwise the first failure's code (130 for an interrupt).
 */
export async function launchWorkers(o: LaunchOptions): Promise<number> {
  const port = await freePort();
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const threads = o.threadsPerWorker;
  if (threads !== undefined && !process.argv.some((a) => a === '--threads' || a.startsWith('--threads='))) args.push('--threads', String(threads));
  const children: ChildProcess[] = [];
  let firstFailure: { rank: number; code: number; why: string } | undefined;
  let interrupted = false;
  let killTimer: NodeJS.Timeout | undefined;

  // Ctrl-C reaches the workers directly (same process group): they agree on a batch to stop at
  // and rank 0 saves the checkpoint. A second Ctrl-C kills them.
  let interrupts = 0;
  const onSigint = (): void => {
    interrupted = true;
    if (++interrupts > 1) for (const c of children) c.kill('SIGKILL');
  };
  process.on('SIGINT', onSigint);
  const onSigterm = (): void => {
    for (const c of children) c.kill('SIGTERM');
  };
  process.on('SIGTERM', onSigterm);

  const exits = Array.from({ length: o.nproc }, (_, rank) => {
    const child = spawn(process.execPath, args, {
      // Rank 0 owns the terminal; the others only report errors, prefixed with their rank.
      stdio: rank === 0 ? 'inherit' : ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        [WORKER_ENV]: String(rank),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        RANK: String(rank),
        WORLD_SIZE: String(o.nproc),
        LOCAL_RANK: String(rank),
        LOCAL_WORLD_SIZE: String(o.nproc),
      },
    });
    children.push(child);
    child.stderr?.on('data', (d: Buffer) => {
      for (const line of d.toString().split('\n')) if (line.trim()) process.stderr.write(`[rank ${rank}] ${line}\n`);
    });
    return new Promise<void>((resolve) => {
      child.on('exit', (code, signal) => {
        const failed = code !== 0;
        if (failed && firstFailure === undefined) {
          firstFailure = { rank, code: code ?? 1, why: signal ? `was killed by ${signal}` : `exited with code ${code}` };
          if (!interrupted && code !== 130) {
            // The others notice the dead peer themselves (c10d errors); this bounds the rest.
            killTimer = setTimeout(() => {
              for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
            }, (o.graceSeconds ?? 30) * 1000);
          }
        }
        resolve();
      });
    });
  });
  await Promise.all(exits);
  if (killTimer) clearTimeout(killTimer);
  process.off('SIGINT', onSigint);
  process.off('SIGTERM', onSigterm);
  if (!firstFailure) return 0;
  if (interrupted || firstFailure.code === 130) return 130;
  process.stderr.write(`bnn: worker rank ${firstFailure.rank} of ${o.nproc} ${firstFailure.why}; the run stopped\n`);
  return firstFailure.code === 0 ? 1 : firstFailure.code;
}

/** The default threads per CPU worker: the cores shared out, at least 1. */
export function cpuThreadsPerWorker(nproc: number): number {
  return Math.max(1, Math.floor(os.availableParallelism() / nproc));
}
