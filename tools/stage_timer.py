"""Run one stage script and record where its time went: ``python -m tools.stage_timer SCRIPT ARGS...``.

tools/bench_chain.py points run.sh's ``PYTHON`` at a wrapper that runs every stage through this
module. For a script (``generate.py``, ...) it appends one JSON line to ``$STAGE_TIMER_LOG``:

* ``startup_s``: from the process's start (the kernel's record) to the end of the script's imports;
* ``loading_s``: time inside the model loaders (``ldm.pipeline.model_from_config``,
  ``rife.model.load_flownet``), which read or build the weights;
* ``wall_s``: from the process's start to the script's end; ``peak_gpu_gib``: CUDA's peak allocation.
``-m module`` commands (the preflight, torchrun) run unchanged and are recorded by wall time only.
"""
import importlib.abc
import importlib.machinery
import json
import os
import runpy
import sys
import time
from pathlib import Path

from utils.cli import run_main

LOADERS = {"ldm.pipeline": "model_from_config", "rife.model": "load_flownet"}
GIB = 2 ** 30


def process_start_time() -> float:
    """The Unix time this process started, from /proc (10 ms resolution); now where /proc is missing."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return time.time()


class TimedLoaders(importlib.abc.MetaPathFinder):
    """Wraps each loader of LOADERS when its module is first imported, adding its time to ``seconds``."""

    def __init__(self):
        self.seconds = 0.0

    def find_spec(self, name, path, target=None):
        if name not in LOADERS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            setattr(module, LOADERS[name], self.timed(getattr(module, LOADERS[name])))
        spec.loader.exec_module = exec_and_wrap
        return spec

    def timed(self, fn):
        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return call


def peak_gpu_gib() -> float | None:
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return max(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / GIB


def record(entry: dict) -> None:
    log = os.environ.get("STAGE_TIMER_LOG")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(entry) + "\n")


def main() -> None:
    started = process_start_time()
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: python -m tools.stage_timer SCRIPT ARGS... | -m MODULE ARGS...")
    entry = dict(command=args[:2] if args[0] == "-m" else args[:1], start=started)
    try:
        if args[0] == "-m":
            sys.argv = args[1:]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
            return
        loaders = TimedLoaders()
        sys.meta_path.insert(0, loaders)
        sys.argv = args
        sys.path.insert(0, str(Path(args[0]).resolve().parent))
        script = runpy.run_path(args[0], run_name="__stage__")  # imports and definitions, not main()
        entry["startup_s"] = time.time() - started
        try:
            run_main(script["main"])
        finally:
            entry["loading_s"] = loaders.seconds
    finally:
        entry.update(wall_s=time.time() - started, peak_gpu_gib=peak_gpu_gib())
        record(entry)


if __name__ == "__main__":
    main()
