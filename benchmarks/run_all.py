"""`make bench`: every benchmark in one invocation; each prints its figures and writes JSON to
benchmarks/results/."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["simulation_yield.py", "training_throughput.py", "eval_throughput.py", "engine_weights.py"]

failed = []
for script in SCRIPTS:
    path = HERE / script
    if not path.is_file():
        print(f"== {script}: missing", flush=True)
        failed.append(script)
        continue
    print(f"== {script}", flush=True)
    start = time.perf_counter()
    rc = subprocess.call([sys.executable, str(path)])
    print(f"== {script}: exit {rc}, {time.perf_counter() - start:.0f} s", flush=True)
    if rc:
        failed.append(script)
sys.exit(1 if failed else 0)
