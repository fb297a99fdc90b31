"""app.costs' estimate against the measured peak memory of real training steps.

Each spec trains 2 steps (with the step-0 and final evaluations) in a fresh interpreter on the
CPU, one thread; measured = peak resident memory (VmHWM) above the resident memory just before
training starts, set against the estimate minus its baseline. `--ceiling MB` also checks that
the spec runs under that RLIMIT_DATA (the worker's cap), a second way to read the same peak.

    PYTHONPATH=$PWD python bench/job_memory.py            # the table in app/costs.py's docstring
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from bench.common import ROOT

SPECS = [
    {"loss": "triplet", "miner": "semihard"},
    {"loss": "triplet", "miner": "all", "classes_per_batch": 10, "samples_per_class": 40},
    {"loss": "contrastive", "miner": "semihard", "classes_per_batch": 10, "samples_per_class": 40},
    {"loss": "ntxent", "miner": "semihard"},
    {"loss": "ntxent", "miner": "none", "classes_per_batch": 8, "samples_per_class": 20},
    {"loss": "multisimilarity", "miner": "multisimilarity", "classes_per_batch": 10, "samples_per_class": 60},
    {"loss": "circle", "miner": "none", "classes_per_batch": 10, "samples_per_class": 60},
    {"loss": "triplet", "miner": "semihard", "image_size": 96},
    {"loss": "triplet", "miner": "semihard", "classes_per_batch": 4, "samples_per_class": 8, "backbone": "resnet18", "image_size": 32},
]

ONE = r"""
import json, resource, sys, tempfile, torch
from pathlib import Path
from app import costs
from app.config import Settings
from app.spec import JobSpec
from trainer.train import train

def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1]) * 1024

class Run:
    device = torch.device("cpu")
    def __init__(self, d): self.job_dir = Path(d)
    def log(self, level, message): pass
    def metric(self, name, step, value): pass
    def check(self, step): pass
    def still_owner(self): return True
    def flush(self): pass

spec = JobSpec.model_validate({"dataset": "digits", "split": "samples", "steps": 2, "eval_every": 1000, "explorer": False, **json.loads(sys.argv[1])})
torch.set_num_threads(1)
if int(sys.argv[2]):
    resource.setrlimit(resource.RLIMIT_DATA, (int(sys.argv[2]) << 20, resource.RLIM_INFINITY))
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM from here
with tempfile.TemporaryDirectory() as home:
    train(spec, Run(home), Settings(home=home))
est = costs.estimate(spec, 1797)
print(json.dumps({"estimate": est.total - est.parts["baseline"], "measured": status("VmHWM") - before, "parts": est.describe()}))
"""


def measure(spec: dict, ceiling_mb: int = 0) -> dict | None:
    out = subprocess.run(
        [sys.executable, "-c", ONE, json.dumps(spec), str(ceiling_mb)], capture_output=True, text=True, cwd=ROOT, timeout=900
    )
    if out.returncode:
        print(out.stderr[-600:], file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ceiling = int(sys.argv[sys.argv.index("--ceiling") + 1]) if "--ceiling" in sys.argv else 0
    print(f"{'spec':55} {'estimate':>9} {'measured':>9}", flush=True)
    for spec in SPECS:
        label = " ".join(str(v) for v in spec.values())
        r = measure(spec, ceiling)
        if r is None:
            print(f"{label:55} failed under the ceiling" if ceiling else f"{label:55} failed", flush=True)
            continue
        print(f"{label:55} {r['estimate'] / 2**30:8.2f}G {r['measured'] / 2**30:8.2f}G   ({r['parts']})", flush=True)


if __name__ == "__main__":
    tempfile.tempdir = tempfile.gettempdir()
    main()
