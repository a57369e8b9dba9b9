"""The torchvision peer of `npm run bench:images`: an epoch over a JPEG folder written the way a
PyTorch user writes it -- datasets.ImageFolder (PIL decoding), the standard ImageNet transforms and
DataLoader(num_workers, shuffle=True) -- timed, with its CPU time and its memory.

  train: RandomResizedCrop(224) + RandomHorizontalFlip + ToTensor + Normalize(ImageNet mean, std)
  eval:  Resize(256) + CenterCrop(224) + ToTensor + Normalize
  decode: only ImageFolder's loader (PIL open + convert('RGB')), to price decoding alone

Run it with the peer's own python (scripts/peer-venv prints its path; the system torch cannot
host torchvision):
  $(scripts/peer-venv) bench/peer/images.py --root /tmp/corpus --mode train --workers 2 --limit 2000
--root is an ImageFolder root, or a folder with train/ and val/ (train mode reads train/, the
others val/). --limit N takes a seeded random N of the images; beyond the folder's size it repeats
it, e.g. a 50,000-image epoch from a 2,000-image corpus to check that RSS stays flat.

Prints one JSON line (and writes it to --json):
  imagesPerSecond        images / wall time of the epoch, worker start-up included
  steadyImagesPerSecond  after the first batch arrived, i.e. without worker start-up
  firstBatchSeconds      iter() to the first batch: start-up plus one batch of work
  cpuSecondsPerImage     user+system CPU of the main process and its workers (RUSAGE_SELF +
                         RUSAGE_CHILDREN; workers are joined at the epoch's end, so they are counted)
  peakRssMiB             max over time of the sum of VmRSS of the process tree. Overstates: forked
                         workers share the parent's pages (the CUDA torch wheel alone puts ~600 MB in
                         each) and each process's VmRSS counts them again.
  peakPssMiB             max over time of the sum of Pss (shared pages split between their users):
                         the tree's real footprint, the figure to compare with a one-process loader.
                         Sampled less often (--pss-interval, and once at each epoch's first batch):
                         reading smaps_rollup costs ~10 ms per process here. pssSamples says how many
                         samples saw workers; with few, the peak may have been missed.
  mainPeakRssMiB         the main process's VmHWM (the kernel's own peak)
  importRssMiB           the main process's RSS after importing torch and torchvision, before any
                         data: the fixed cost of the peer's CUDA build
  samplerCpuSeconds      CPU the memory sampler itself spent (included in cpuSeconds)
--rss-trace FILE writes the samples as CSV (seconds, images so far, tree RSS, tree PSS or empty,
main RSS, processes) to check flatness over a long epoch.
"""
import argparse
import json
import os
import resource
import sys
import threading
import time

import torch
import torchvision
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def status_kib(pid, keys):
    """Fields of /proc/<pid>/status in KiB; None if the process has gone."""
    try:
        with open(f'/proc/{pid}/status') as f:
            text = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    vals = {}
    for line in text.splitlines():
        k, _, v = line.partition(':')
        if k in keys:
            vals[k] = int(v.split()[0])
    return vals


def pss_kib(pid):
    try:
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def process_tree(pid):
    """pid and all its descendants. Children hang off the thread that forked them, so every task's
    children file is read."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f'/proc/{p}/task'):
                with open(f'/proc/{p}/task/{tid}/children') as f:
                    todo += [int(c) for c in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


class MemorySampler(threading.Thread):
    """Samples the tree's memory on a thread: DataLoader workers come and go with each epoch, and
    RUSAGE_CHILDREN's ru_maxrss is the largest single child, not the sum."""

    def __init__(self, rss_interval, pss_interval, trace_path):
        super().__init__(daemon=True)
        self.rss_interval, self.pss_interval = rss_interval, pss_interval
        self.trace = open(trace_path, 'w') if trace_path else None
        if self.trace:
            self.trace.write('seconds,images,treeRssMiB,treePssMiB,mainRssMiB,processes\n')
        self.images = 0  # written by the main loop, read here; a stale value only shifts a trace row
        self.peak_rss = self.peak_pss = 0
        self.cpu = 0.0
        self.pss_samples = 0  # taken while workers were alive: with few, peakPssMiB may miss the peak
        self.stop_event = threading.Event()
        self.pss_now = threading.Event()
        self.t0 = time.perf_counter()

    def sample(self, with_pss):
        pids = process_tree(os.getpid())
        rss, main = 0, 0
        for p in pids:
            s = status_kib(p, ('VmRSS',))
            if s:
                rss += s.get('VmRSS', 0)
                if p == os.getpid():
                    main = s.get('VmRSS', 0)
        self.peak_rss = max(self.peak_rss, rss)
        pss = None
        if with_pss:
            pss = sum(pss_kib(p) for p in pids)
            self.peak_pss = max(self.peak_pss, pss)
            self.pss_samples += len(pids) > 1
        if self.trace:
            self.trace.write(f'{time.perf_counter() - self.t0:.3f},{self.images},{rss / 1024:.1f},'
                             f'{"" if pss is None else f"{pss / 1024:.1f}"},{main / 1024:.1f},{len(pids)}\n')

    def run(self):
        c0 = time.thread_time()
        next_pss = 0.0
        while True:
            now = time.perf_counter()
            with_pss = self.pss_interval > 0 and (now >= next_pss or self.pss_now.is_set())
            if with_pss:
                self.pss_now.clear()
                next_pss = now + self.pss_interval
            self.sample(with_pss)
            if self.stop_event.wait(self.rss_interval):
                break
        self.sample(self.pss_interval > 0)
        self.cpu = time.thread_time() - c0
        if self.trace:
            self.trace.close()

    def request_pss(self):
        """A PSS sample at the next tick: the caller knows when the workers are at full size."""
        self.pss_now.set()

    def stop(self):
        self.stop_event.set()
        self.join()


def build_dataset(root, mode):
    split = 'train' if mode == 'train' else 'val'
    if os.path.isdir(os.path.join(root, split)):
        root = os.path.join(root, split)
    if mode == 'train':
        tf = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    elif mode == 'eval':
        tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224),
                                 transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    else:
        tf = None
    return root, datasets.ImageFolder(root, transform=tf)


def decode_collate(batch):
    """Decoded images have their own sizes and cannot be stacked; the count is all the loop needs."""
    return len(batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--root', required=True)
    ap.add_argument('--mode', choices=['train', 'eval', 'decode'], default='train')
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--limit', type=int, default=0, help='images per epoch (default: the whole folder)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--json', help='also write the result here')
    ap.add_argument('--rss-trace', help='write memory samples here (CSV)')
    ap.add_argument('--rss-interval', type=float, default=0.05, help='seconds between RSS samples (default 0.05)')
    ap.add_argument('--pss-interval', type=float, default=1.0,
                    help='seconds between PSS samples (default 1; 0: none)')
    args = ap.parse_args()

    import_rss = status_kib(os.getpid(), ('VmRSS',))['VmRSS'] / 1024
    torch.manual_seed(args.seed)
    if not os.path.isdir(args.root):
        sys.exit(f'images.py: --root {args.root} is not a folder')
    root, ds = build_dataset(args.root, args.mode)
    n_folder = len(ds)
    if args.limit:
        g = torch.Generator().manual_seed(args.seed)
        reps = -(-args.limit // n_folder)
        idx = torch.cat([torch.randperm(n_folder, generator=g) for _ in range(reps)])[:args.limit]
        ds = Subset(ds, idx.tolist())
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        persistent_workers=False, collate_fn=decode_collate if args.mode == 'decode' else None)

    sampler = MemorySampler(args.rss_interval, args.pss_interval, args.rss_trace)
    sampler.start()
    self0, child0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    epochs = []
    total = 0
    t_all = time.perf_counter()
    for _ in range(args.epochs):
        seen = 0
        t0 = time.perf_counter()
        it = iter(loader)  # worker processes start here
        t_first = None
        first_n = 0
        for batch in it:
            n = batch if args.mode == 'decode' else batch[0].shape[0]
            seen += n
            sampler.images = total + seen
            if t_first is None:
                t_first, first_n = time.perf_counter(), n
                sampler.request_pss()  # short runs would otherwise see PSS only before and after the workers
        t1 = time.perf_counter()
        del it  # joins the workers, so their CPU time reaches RUSAGE_CHILDREN
        total += seen
        steady = (seen - first_n) / (t1 - t_first) if t_first and t1 > t_first else None
        epochs.append({'images': seen, 'seconds': t1 - t0, 'firstBatchSeconds': t_first - t0,
                       'imagesPerSecond': seen / (t1 - t0), 'steadyImagesPerSecond': steady})
    wall = time.perf_counter() - t_all
    sampler.stop()
    self1, child1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    main_cpu = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    worker_cpu = (child1.ru_utime + child1.ru_stime) - (child0.ru_utime + child0.ru_stime)

    def mean(key):
        vals = [e[key] for e in epochs if e[key] is not None]
        return sum(vals) / len(vals) if vals else None

    result = {
        'peer': 'torchvision', 'mode': args.mode, 'root': os.path.abspath(root), 'folderImages': n_folder,
        'classes': len(ds.classes) if hasattr(ds, 'classes') else len(ds.dataset.classes),
        'images': total, 'epochs': args.epochs, 'batchSize': args.batch_size, 'workers': args.workers,
        'imagesPerSecond': total / wall,
        'steadyImagesPerSecond': mean('steadyImagesPerSecond'),
        'firstBatchSeconds': mean('firstBatchSeconds'),
        'seconds': wall,
        'cpuSeconds': main_cpu + worker_cpu, 'mainCpuSeconds': main_cpu, 'workerCpuSeconds': worker_cpu,
        'cpuSecondsPerImage': (main_cpu + worker_cpu) / total if total else None,
        'samplerCpuSeconds': sampler.cpu,
        'peakRssMiB': sampler.peak_rss / 1024,
        'peakPssMiB': sampler.peak_pss / 1024 if args.pss_interval > 0 else None,
        'pssSamples': sampler.pss_samples,
        'mainPeakRssMiB': status_kib(os.getpid(), ('VmHWM',))['VmHWM'] / 1024,
        'importRssMiB': import_rss,
        'epochStats': epochs,
        'torch': torch.__version__, 'torchvision': torchvision.__version__,
        'pillow': __import__('PIL').__version__, 'cpus': os.cpu_count(),
    }
    line = json.dumps(result)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(line + '\n')
    print(line)


if __name__ == '__main__':
    main()
