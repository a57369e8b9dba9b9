"""Self time per op from a chrome trace (LibTorch's RecordProfile or torch.profiler export).

Usage: python3 bench/trace-summary.py step.trace [top-N]
Self time = an event's duration minus its direct children's, per thread, so nested ATen calls are
not counted twice.
"""
import json, sys
from collections import defaultdict

events = [e for e in json.load(open(sys.argv[1])) if e.get('ph') == 'X']
top = int(sys.argv[2]) if len(sys.argv) > 2 else 20
by_thread = defaultdict(list)
for e in events:
    by_thread[e.get('tid')].append(e)
self_time = defaultdict(float)
calls = defaultdict(int)
total = 0.0
for evs in by_thread.values():
    evs.sort(key=lambda e: (e['ts'], -e['dur']))
    stack = []
    for e in evs:
        end = e['ts'] + e['dur']
        while stack and stack[-1][1] <= e['ts'] + 1e-9:
            stack.pop()
        if stack:
            self_time[stack[-1][0]['name']] -= e['dur']
        else:
            total += e['dur']
        self_time[e['name']] += e['dur']
        calls[e['name']] += 1
        stack.append((e, end))
rows = sorted(self_time.items(), key=lambda kv: -kv[1])[:top]
print(f"{'op':48s} {'self ms':>9s} {'share':>6s} {'calls':>6s}")
for name, t in rows:
    print(f"{name[:48]:48s} {t/1000:9.2f} {100*t/total:5.1f}% {calls[name]:6d}")
print(f"{'total (top-level)':48s} {total/1000:9.2f}")
