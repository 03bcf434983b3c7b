"""Where a whole script run's time and memory go: start-up, data, training, evaluation, figures and files.

    python benchmarks/run_overhead.py cnn_numpy -- --epochs 1 --out-dir /tmp/o --checkpoint /tmp/o/c.npz
    OMP_NUM_THREADS=1 python benchmarks/run_overhead.py cnn_torch -- --epochs 1 --out-dir /tmp/o --checkpoint /tmp/o/c.pt

Runs the script's own main() in this process with timers around its phases (importing the script and
what it imports, load_model_inputs, train_epoch, predict, Run.finish), and a thread that samples the resident
set (Linux /proc) every 2 ms, so each phase's peak memory shows which one sets the run's peak.
"""

import argparse
import importlib
import resource
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class Phases:
    """Seconds and peak resident megabytes per phase; ``with phases("name"):`` marks one."""

    def __init__(self):
        self.seconds, self.peak_mb = defaultdict(float), defaultdict(float)
        self.current = "start-up"
        self.page = resource.getpagesize()
        threading.Thread(target=self.sample, daemon=True).start()

    def sample(self):
        with open("/proc/self/statm") as statm:
            while True:
                statm.seek(0)
                rss = int(statm.read().split()[1]) * self.page / 2 ** 20
                self.peak_mb[self.current] = max(self.peak_mb[self.current], rss)
                time.sleep(0.002)

    def wrap(self, owner, name, phase):
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            outer, self.current = self.current, phase
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.current = outer
        setattr(owner, name, timed)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("script", choices=["nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"])
    p.add_argument("script_args", nargs=argparse.REMAINDER, help="after --: the script's own flags")
    args = p.parse_args()
    phases = Phases()
    started = time.perf_counter()
    script = importlib.import_module(args.script)
    phases.seconds["start-up"] = time.perf_counter() - started
    phases.current = "other"
    import common.run

    loop = importlib.import_module("nn_torch" if args.script.endswith("torch") else "nn_numpy")
    phases.wrap(loop, "load_model_inputs", "data")
    phases.wrap(loop, "train_epoch", "training")
    phases.wrap(loop, "predict", "evaluation")
    phases.wrap(common.run.Run, "finish", "figures and files")
    script.main([a for a in args.script_args if a != "--"])
    total = time.perf_counter() - started
    rest = total - sum(phases.seconds.values())
    print(f"| {args.script} | " + " | ".join(f"{phases.seconds[k]:.1f} s, {phases.peak_mb[k]:,.0f} MB" for k in
                                             ("start-up", "data", "training", "evaluation", "figures and files"))
          + f" | {rest:.1f} s, {phases.peak_mb['other']:,.0f} MB | {total:.1f} s | "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB |")


if __name__ == "__main__":
    sys.exit(main())
