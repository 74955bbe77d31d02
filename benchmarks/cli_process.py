"""`candlecast` commands timed as whole processes, start-up included (hyperfine-like).

Each command runs `--runs` times in a fresh interpreter against PostgreSQL, with 90 days of 5m
candles served by the fake exchange (its own process). It reports the median wall time, the
median CPU time (user + system: what a loaded machine distorts least) and the peak RSS, all
from wait4's rusage of that one process.

Run: python -m benchmarks.cli_process [--runs 7] [--only help,status,rerun,fresh,train]
     python -m benchmarks.cli_process --baseline-src DIR   # train, paired with an older tree
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import SHARED_DATA, fake_exchange_process, machine, scratch_database

# The exchange's clock sits in the middle of a candle, as in benchmarks/backfill.py.
START = "2025-09-30T12:02:30Z"
CSV = "btcusdt-5m-2025-06-29_2025-10-06.csv"


@dataclass
class Run:
    """One process: its wall and CPU (user + system) time in s, peak RSS (MiB), exit status."""

    seconds: float
    cpu_seconds: float
    rss_mib: float
    status: int


# A small launcher: Linux counts the pre-exec memory of a forked (or vforked) copy of the
# parent towards a child's peak RSS, so the command is forked from this ~10 MiB interpreter
# rather than from the benchmark process with its SQLAlchemy and candlecast imports.
_LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.executable, [sys.executable, "-m", "candlecast.cli", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
cpu = usage.ru_utime + usage.ru_stime
print(json.dumps([seconds, cpu, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def run_once(args: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Runs `python -m candlecast.cli ARGS` in `cwd` and measures that one process."""
    done = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, cpu, max_rss_kib, code = json.loads(done.stdout.strip().splitlines()[-1])
    if code != 0:
        raise RuntimeError(f"candlecast {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
    return Run(float(seconds), float(cpu), max_rss_kib / 1024, int(code))


def summarize(name: str, runs: list[Run]) -> dict[str, object]:
    """Median and spread of several runs of one command."""
    seconds = [r.seconds for r in runs]
    return {
        "command": name,
        "runs": len(runs),
        "median_s": round(statistics.median(seconds), 3),
        "min_s": round(min(seconds), 3),
        "max_s": round(max(seconds), 3),
        "median_cpu_s": round(statistics.median(r.cpu_seconds for r in runs), 3),
        "median_rss_mib": round(statistics.median(r.rss_mib for r in runs), 1),
        "max_rss_mib": round(max(r.rss_mib for r in runs), 1),
    }


def _environment(database_url: str, exchange_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLECAST_")}
    env.update(
        {
            "CANDLECAST_DATABASE_URL": database_url,
            "CANDLECAST_BINANCE_URL": exchange_url,
            "CANDLECAST_BACKFILL_DAYS": "90",
            "CANDLECAST_TRAIN_DAYS": "90",
            "COLUMNS": "80",
        }
    )
    return env


def measure(runs: int, only: set[str]) -> list[dict[str, object]]:
    """Times every selected command `runs` times; see the module docstring."""
    results: list[dict[str, object]] = []
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        exchange = stack.enter_context(fake_exchange_process(SHARED_DATA / CSV, START))
        filled = stack.enter_context(scratch_database("postgresql", folder))
        env = _environment(filled, exchange)
        run_once(["backfill"], env, folder)  # the 90 days every other command reads

        def repeat(
            key: str, name: str, args: list[str], before: Callable[[], dict[str, str]]
        ) -> None:
            if key not in only:
                return
            measured = []
            for _ in range(runs):
                measured.append(run_once(args, before(), folder))
            results.append(summarize(name, measured))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)

        def fresh_database() -> dict[str, str]:
            # An empty, migrated schema per run: the backfill fetches all 90 days.
            url = stack.enter_context(scratch_database("postgresql", folder))
            return _environment(url, exchange)

        repeat("help", "candlecast --help", ["--help"], lambda: env)
        repeat("status", "candlecast status", ["status"], lambda: env)
        repeat("rerun", "candlecast backfill (re-run, nothing new)", ["backfill"], lambda: env)
        repeat("fresh", "candlecast backfill (fresh, 90 d of 5m)", ["backfill"], fresh_database)
        if "train" in only:
            run_once(["train"], env, folder)  # a champion exists, as in steady use
        repeat("train", "candlecast train --force (90 d of 5m)", ["train", "--force"], lambda: env)
    return results


_BREAKDOWN = """
import json, sys, time
# mark(name): the stage called `name` begins now (and the previous one ends).
marks = []
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
mark("imports: pandas, LightGBM, the jobs")
from candlecast.jobs import preload
preload.lightgbm_without_sklearn()
from candlecast.jobs import modeling
mark("settings, engine, migration check")
from candlecast.bootstrap import bootstrap
from candlecast.config import Settings
services = bootstrap(Settings())
mark("train lock and run record")
outcome = modeling.train_model(
    services.engine, symbol="BTCUSDT", interval="5m", days=90, force=True, on_stage=mark
)
mark("end")
out = {}
for (name, wall, cpu), (_, wall2, cpu2) in zip(marks, marks[1:]):
    out[name] = [round(wall2 - wall, 3), round(cpu2 - cpu, 3)]
print(json.dumps(out))
"""


def breakdown(runs: int) -> dict[str, list[float]]:
    """Where `candlecast train`'s time goes, per stage: median [wall, CPU] seconds."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        exchange = stack.enter_context(fake_exchange_process(SHARED_DATA / CSV, START))
        url = stack.enter_context(scratch_database("postgresql", folder))
        env = _environment(url, exchange)
        run_once(["backfill"], env, folder)
        run_once(["train"], env, folder)
        samples: list[dict[str, list[float]]] = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", _BREAKDOWN],
                env=env,
                cwd=folder,
                capture_output=True,
                text=True,
                check=True,
            )
            samples.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        name: [statistics.median(s[name][i] for s in samples) for i in (0, 1)]
        for name in samples[0]
    }


def paired_train(runs: int, baseline_src: Path) -> list[dict[str, object]]:
    """`train --force` alternately with the installed code and with `baseline_src` (a source
    tree put first on PYTHONPATH, e.g. `git archive <commit> src | tar -x -C DIR`): on a shared
    machine, runs in the same minutes compare fairly where separate series do not."""
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        exchange = stack.enter_context(fake_exchange_process(SHARED_DATA / CSV, START))
        url = stack.enter_context(scratch_database("postgresql", folder))
        env = _environment(url, exchange)
        baseline_env = {**env, "PYTHONPATH": str(baseline_src.resolve() / "src")}
        run_once(["backfill"], env, folder)
        run_once(["train"], env, folder)
        now: list[Run] = []
        before: list[Run] = []
        for _ in range(runs):
            before.append(run_once(["train", "--force"], baseline_env, folder))
            now.append(run_once(["train", "--force"], env, folder))
    return [
        summarize(f"train --force, baseline {baseline_src}", before),
        summarize("train --force, installed code", now),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--only", default="help,status,rerun,fresh,train", help="comma-separated: help,status,..."
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="time train's stages in-process instead"
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="time train alternately with this source tree (holding src/) and the installed code",
    )
    args = parser.parse_args()
    if args.baseline_src is not None:
        load_before = os.getloadavg()[0]
        results = paired_train(args.runs, args.baseline_src)
        summary = {"machine": machine(), "runs": args.runs, "results": results}
        summary["load_average_before"] = round(load_before, 2)
        summary["load_average_after"] = round(os.getloadavg()[0], 2)
        print(json.dumps(summary, indent=2))
        return
    if args.breakdown:
        print(json.dumps({"machine": machine(), "stages_wall_cpu_s": breakdown(args.runs)}))
        return
    load_before = os.getloadavg()[0]
    results = measure(args.runs, set(args.only.split(",")))
    print(
        json.dumps(
            {
                "machine": machine(),
                "runs": args.runs,
                "load_average_before": round(load_before, 2),
                "load_average_after": round(os.getloadavg()[0], 2),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
