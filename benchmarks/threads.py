"""CPU threads under load: loaded against unloaded, torch's default against ``--threads``'s default.

Times two fixed CPU workloads in fresh processes, side by side in one run:

- ``unet``: one call of the ``denoise-data`` network on a batch of 8 crops of 64² (the median
  of ``--calls`` calls after two warm-up calls);
- ``quality``: ``mrs-numerics benchmark quality --quick`` restricted to a short configuration
  (``QUALITY_ARGS``), through the command's ``main``;

each with three settings:

- ``before``: torch's own default, one thread per core (``--threads <cores>``);
- ``passive``: the same threads with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at
  once instead of spinning), the environment fix that was considered;
- ``after``: the command's default, ``DEFAULT_THREADS`` of ``mrs_numerics.cli.common``;

and each unloaded and loaded: while one busy process (``python -c "while True: pass"``,
started and stopped by this script) competes for the same cores. The rounds interleave the
settings so that the machine's own load drifts over all of them alike. For each run it keeps
the wall seconds and the CPU seconds of the process (all its threads): spinning threads show as
CPU seconds that do no work. It writes a Markdown report:

    python benchmarks/threads.py [--rounds 3] [--calls 5] [--out benchmarks/results/threads_cpu.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUALITY_ARGS = (
    "benchmark",
    "quality",
    "--quick",
    "--samplers",
    "mrs-ode-2-data,mrs-sde-2-data",
    "--nfe",
    "5",
    "--seeds",
    "1",
    "--reference-steps",
    "20",
    "--sde-refinement",
    "1",
    "--no-progress",
)
"""The short ``benchmark quality --quick`` configuration of the ``quality`` workload."""
WORKLOADS = ("unet", "quality")
SETTINGS = ("before", "passive", "after")
LOADS = ("unloaded", "loaded")


def _worker(workload: str, threads: str | None, calls: int) -> dict:
    """Run one workload in this process; its wall and CPU seconds (what the parent reads)."""
    import torch

    from mrs_numerics.cli import main
    from mrs_numerics.cli.common import thread_count, torch_threads

    if workload == "unet":
        from mrs_numerics.models.registry import load_model

        net, _ = load_model("denoise-data")
        generator = torch.Generator().manual_seed(0)
        mu = torch.rand(8, 3, 64, 64, generator=generator)
        x = mu + 0.1 * torch.randn(mu.shape, generator=generator)
        t = torch.full((8,), 0.5, dtype=torch.float64)
        with torch_threads(thread_count(threads)), torch.inference_mode():
            used = torch.get_num_threads()
            for _ in range(2):
                net(x, t, mu)
            walls = []
            cpu = time.process_time()
            for _ in range(calls):
                start = time.perf_counter()
                net(x, t, mu)
                walls.append(time.perf_counter() - start)
            cpu = time.process_time() - cpu
        return {"wall": statistics.median(walls), "cpu": cpu / calls, "threads": used}
    with tempfile.TemporaryDirectory() as folder:
        argv = [*QUALITY_ARGS, "--out", folder, "--json", f"{folder}/quality.json"]
        if threads is not None:
            argv += ["--threads", threads]
        cpu, start = time.process_time(), time.perf_counter()
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            status = main(argv)  # its table goes to the sink: stdout is the parent's JSON
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        metadata = json.loads(Path(folder, "quality.json").read_text())["metadata"]
    if status != 0:
        raise RuntimeError(f"benchmark quality exited with status {status}")
    return {"wall": wall, "cpu": cpu, "threads": metadata["torch_threads"]}


def _measure(workload: str, setting: str, calls: int) -> dict:
    """Run one workload with one setting in a fresh process (the environment is read at start)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        environment.pop(name, None)
    command = [sys.executable, __file__, "--worker", workload, "--calls", str(calls)]
    if setting in ("before", "passive"):
        command += ["--threads", str(os.cpu_count())]
    if setting == "passive":
        environment["OMP_WAIT_POLICY"] = "PASSIVE"
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{workload}/{setting} failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["loadavg"] = os.getloadavg()[0]
    return result


def _busy() -> subprocess.Popen:
    """A process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _spread(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """Median and range of ``values``: ``m [lo–hi]``."""
    v = [value * scale for value in values]
    return f"{statistics.median(v):.{digits}f} [{min(v):.{digits}f}–{max(v):.{digits}f}]"


def _ratios(top: list[float], bottom: list[float]) -> str:
    """Ratio of the medians, and the range of the per-round ratios."""
    per_round = [a / b for a, b in zip(top, bottom, strict=True)]
    low, high = min(per_round), max(per_round)
    return f"{statistics.median(top) / statistics.median(bottom):.2f}× [{low:.2f}–{high:.2f}]"


def _report(runs: dict, args: argparse.Namespace, started: float, load: tuple) -> str:
    """The Markdown report of every run."""
    import torch

    from mrs_numerics.cli.common import DEFAULT_THREADS

    cores = os.cpu_count()
    cpu_name = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").is_file():
        names = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line
        ]
        cpu_name = names[0].split(":", 1)[1].strip() if names else cpu_name
    openmp = next(
        (
            line.strip()
            for line in torch.__config__.parallel_info().splitlines()
            if "OpenMP" in line
        ),
        "?",
    )
    lines = [
        "# CPU threads under load",
        "",
        f"`python benchmarks/threads.py --rounds {args.rounds} --calls {args.calls}`, "
        f"{time.strftime('%Y-%m-%d', time.localtime(started))}, "
        f"{time.time() - started:.0f} s. {cores} cores ({cpu_name}), torch {torch.__version__}, "
        f"{openmp}.",
        "",
        f"- before: torch's default, one thread per core (`--threads {cores}`);",
        f"- passive: {cores} threads with `OMP_WAIT_POLICY=PASSIVE` in the environment;",
        f"- after: the command's default, `DEFAULT_THREADS` = {DEFAULT_THREADS}.",
        "",
        'Loaded: one busy process (`python -c "while True: pass"`) competes for the cores.',
        "Unloaded: none started by this script; the machine's 1-minute load average over the",
        f"runs was {min(load):.1f} – {max(load):.1f} (other jobs), so the unloaded runs are not",
        "on idle cores either. Each cell: median over the rounds [range].",
        "",
        "unet: one call of `denoise-data` on 8 crops of 64² (median of "
        f"{args.calls} calls). quality: `mrs-numerics " + " ".join(QUALITY_ARGS) + "` (whole run"
        " through `main`, without the start-up).",
        "",
        "| workload | setting | threads | unloaded wall s | loaded wall s | loaded / unloaded "
        "| unloaded CPU s | loaded CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        for setting in SETTINGS:
            free = runs[workload, setting, "unloaded"]
            busy = runs[workload, setting, "loaded"]
            walls = [r["wall"] for r in free], [r["wall"] for r in busy]
            cpus = [r["cpu"] for r in free], [r["cpu"] for r in busy]
            threads = free[0]["threads"]
            lines.append(
                f"| {workload} | {setting} | {threads} | {_spread(walls[0])} | {_spread(walls[1])}"
                f" | {_ratios(walls[1], walls[0])} | {_spread(cpus[0])} | {_spread(cpus[1])} |"
            )
    lines += [
        "",
        "Ratios of wall seconds (median of the rounds [range of the per-round ratios]):",
        "",
    ]
    lines += ["| workload | comparison | unloaded | loaded |", "|---|---|---|---|"]
    for workload in WORKLOADS:
        for top, bottom in (("after", "before"), ("passive", "before")):
            cells = []
            for load_name in LOADS:
                a = [r["wall"] for r in runs[workload, top, load_name]]
                b = [r["wall"] for r in runs[workload, bottom, load_name]]
                cells.append(_ratios(a, b))
            lines.append(f"| {workload} | {top} / {bottom} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Measure every workload, setting and load for ``--rounds`` rounds; write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of every run")
    parser.add_argument("--calls", type=int, default=5, help="timed network calls of unet")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/threads_cpu.md")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--threads", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        sys.stdout.write(json.dumps(_worker(args.worker, args.threads, args.calls)) + "\n")
        return 0
    started = time.time()
    runs: dict = {}
    for round_number in range(args.rounds):
        for load_name in LOADS:
            busy = _busy() if load_name == "loaded" else None
            try:
                time.sleep(1.0)
                for workload in WORKLOADS:
                    for setting in SETTINGS:
                        result = _measure(workload, setting, args.calls)
                        runs.setdefault((workload, setting, load_name), []).append(result)
                        sys.stderr.write(
                            f"round {round_number + 1} {load_name:<8} {workload:<7} {setting:<7}"
                            f" {result['threads']} threads: wall {result['wall']:7.2f} s,"
                            f" CPU {result['cpu']:7.2f} s, load {result['loadavg']:.1f}\n"
                        )
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    load = tuple(r["loadavg"] for results in runs.values() for r in results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(_report(runs, args, started, load))
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
