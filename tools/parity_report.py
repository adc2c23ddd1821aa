"""How close this machine is to the original: each stage's largest deviation from ../shared/reference.

    python -m tools.parity_report                   # every stage on the CPU
    python -m tools.parity_report --device cuda     # on a GPU (fp32, TF32 off)
    python -m tools.parity_report --sweep           # the spread over CPU kernel sets, oneDNN and threads

One row per stage: its worst quantity, the largest absolute deviation (uint8: grey levels; schedule:
float32 ulps), the share of values that differ, the deviation in units of the tolerance (pass: <= 1)
and the tolerance. ``--all`` lists every quantity. ``--sweep`` reruns the report in fresh processes
under each variation a user's machine brings (``ATEN_CPU_CAPABILITY`` default/avx2/avx512 where the
CPU has it; per capability 1 and 2 threads with oneDNN, and 2 threads without) and prints the worst deviation of each stage over them:
the measured spread the tolerances are set from.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from tools.parity.checks import CHECKS, Reference, run_check
from utils.cli import run_main
from utils.devices import resolve_device
from utils.errors import UserError
from utils.images import write_json

DEFAULT_REFERENCE = Path(os.environ.get("EFFICIENT4D_REFERENCE",
                                        Path(__file__).resolve().parents[1].parent / "shared" / "reference"))
CAPABILITIES = ("default", "avx2", "avx512")


def report(reference: Path, device: torch.device, stages: list[str]) -> list[dict]:
    """Every quantity of ``stages`` as a JSON-ready row."""
    ref = Reference(reference, device)
    rows = []
    for stage in stages:
        for d in run_check(ref, stage):
            rows.append(dict(stage=d.stage, quantity=d.quantity, max_abs=d.max_abs, share=d.share, score=d.score,
                             ok=d.ok, tolerance=d.tolerance.describe(), rule=d.tolerance.rule))
    return rows


def worst_per_stage(rows: list[dict]) -> list[dict]:
    worst = {}
    for row in rows:
        if row["stage"] not in worst or row["score"] > worst[row["stage"]]["score"]:
            worst[row["stage"]] = row
    return list(worst.values())


def print_rows(rows: list[dict], title: str) -> None:
    print(title)
    print(f"{'stage':11} {'quantity':44} {'max|diff|':>10} {'differ':>8} {'x tol':>8}  tolerance")
    for r in rows:
        status = "" if r["ok"] else "  FAIL"
        print(f"{r['stage']:11} {r['quantity'][:44]:44} {r['max_abs']:>10.3g} {r['share']:>8.2%} {r['score']:>8.3g}  "
              f"{r['tolerance']}{status}{'  (' + r['variant'] + ')' if 'variant' in r else ''}")


def cpu_capabilities() -> list[str]:
    """The ATen CPU capabilities this CPU can run (avx512 needs avx512f/bw/vl/dq)."""
    flags = set()
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        pass
    available = ["default"]
    if {"avx2", "fma"} <= flags:
        available.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        available.append("avx512")
    return available


def sweep(reference: Path, stages: list[str]) -> list[dict]:
    """The worst row of every quantity over the CPU variations, each run in a fresh process."""
    worst: dict[tuple[str, str], dict] = {}
    # Per capability: 1 and 2 threads with oneDNN, and 2 threads without it (oneDNN's kernels are the
    # ones thread counts change least; its absence moves convolutions to ATen's own).
    variants = [(capability, threads, onednn) for capability in cpu_capabilities()
                for threads, onednn in ((1, True), (2, True), (2, False))]
    for capability, threads, onednn in variants:
        name = f"{capability}, {threads} thread{'s' if threads > 1 else ''}, oneDNN {'on' if onednn else 'off'}"
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "rows.json"
            command = [sys.executable, "-m", "tools.parity_report", "--reference", str(reference), "--threads",
                       str(threads), "--json", str(out), "--stage", *stages] + ([] if onednn else ["--no-onednn"])
            env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
            if not out.is_file():  # a deviation outside its tolerance still writes the rows
                print(f"{name}: failed\n{done.stderr[-2000:]}", file=sys.stderr)
                continue
            rows = json.loads(out.read_text())["rows"]
        print(f"{name}: worst {max(r['score'] for r in rows):.3g} x tolerance", flush=True)
        for row in rows:
            key = (row["stage"], row["quantity"])
            if key not in worst or row["score"] > worst[key]["score"]:
                worst[key] = row | dict(variant=name)
    return list(worst.values())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                        help="the parity fixtures (default ../shared/reference)")
    parser.add_argument("--stage", nargs="+", choices=list(CHECKS), default=list(CHECKS), help="stages to check")
    parser.add_argument("--all", action="store_true", help="list every quantity, not only each stage's worst")
    parser.add_argument("--sweep", action="store_true", help="the spread over CPU kernel sets, oneDNN and threads")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--no-onednn", dest="onednn", action="store_false", help="run with oneDNN (mkldnn) off")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not (args.reference / "README.md").is_file():
        raise UserError(f"no parity fixtures at {args.reference}; pass --reference with the shared/reference folder")
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.onednn
    if args.sweep:
        rows = sweep(args.reference, args.stage)
        title = "largest deviation over the sweep (the variation that gave it in brackets):"
    else:
        device = resolve_device(args.device)
        rows = report(args.reference, device, args.stage)
        title = (f"deviation from the original on {device} ({torch.get_num_threads()} threads, oneDNN "
                 f"{'on' if args.onednn else 'off'}, ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', 'auto')}):")
    print_rows(rows if args.all else worst_per_stage(rows), title)
    if args.json:
        write_json(args.json, {"rows": rows})
    failed = [r for r in rows if not r["ok"]]
    if failed:
        raise UserError(f"{len(failed)} quantities outside their tolerance (first: {failed[0]['stage']} "
                        f"{failed[0]['quantity']}, {failed[0]['score']:.3g} x tolerance)")


if __name__ == "__main__":
    run_main(main)
