"""Shared benchmark harness: fresh-process measurement, peak memory, machine load, results files.

Everything here is standard library only, so it also runs under the Evidently virtualenv
(bench/drift.py's worker) and in a worker before any heavy import.

Two ways to measure memory:

- inside a worker: `reset_peak_rss()` then `peak_rss_mb()` (the kernel's VmHWM for this process);
- from the parent: `run_measured(cmd)` starts the command as a fresh process, polls the RSS of
  the whole process tree (the child and any grandchildren) from /proc, and takes the child's own
  `ru_maxrss` from `os.wait4`; the peak is the larger of the two.

Every figure should be stored with the machine's load (`load_average()`, `busy_cores()`): the
benchmark machine is shared, and a busy neighbour makes times pessimistic.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
QUIET_BUSY_CORES = 0.3  # other processes' CPU use below which a run starts at once
MB = 2**20


# ============================================================================================
# inside a worker process


def rss_mb() -> float:
    """Current resident set size of this process, MB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0), so VmHWM counts from now."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM), MB; ru_maxrss only if /proc has no VmHWM (it would
    include the parent's peak, inherited across exec)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_method(reset: bool) -> str:
    return "VmHWM after clear_refs reset" if reset else "VmHWM since process start"


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads), s."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ============================================================================================
# machine and its load


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (runnable processes; 2 = both cores busy)."""
    return [round(x, 2) for x in os.getloadavg()]


def busy_cores(interval: float = 0.5) -> float:
    """CPU cores kept busy by all processes right now (from /proc/stat over `interval`)."""

    def sample() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    busy0, total0 = sample()
    time.sleep(interval)
    busy1, total1 = sample()
    return (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)


def wait_for_quiet(max_wait_s: float, threshold: float = QUIET_BUSY_CORES) -> float:
    """Wait (at most `max_wait_s`) until other processes use fewer than `threshold` cores;
    return the last reading, which is stored with the run."""
    deadline = time.perf_counter() + max_wait_s
    busy = busy_cores()
    while busy >= threshold and time.perf_counter() < deadline:
        time.sleep(1.0)
        busy = busy_cores()
    return busy


def package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Installed versions of distributions, without importing them."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_info(packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Where the numbers were taken, including the load when they were taken."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu,
        "memory_gb": round(mem_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": load_average(),
        **package_versions(packages),
    }


def machine_line(machine: dict[str, Any]) -> str:
    """One Markdown-friendly sentence describing the machine."""
    return f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['memory_gb']} GB, Python {machine['python']}"


def now_utc() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


# ============================================================================================
# from the parent: one command in a fresh process


def _tree_rss_mb(pid: int) -> tuple[float, float]:
    """(total, largest single process) RSS of `pid` and all its descendants, MB (processes
    that vanished count 0)."""
    total, largest, stack, seen = 0.0, 0.0, [pid], set()
    page = os.sysconf("SC_PAGE_SIZE")
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm") as fh:
                rss = int(fh.read().split()[1]) * page / MB
            total, largest = total + rss, max(largest, rss)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue
    return total, largest


def run_measured(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT, timeout_s: float | None = None,
    poll_s: float = 0.2, log_file: Path | None = None, max_rss_mb: float | None = None,
) -> dict[str, Any]:
    """Run `cmd` in a fresh process; wall time, CPU time, peak memory of the process tree,
    load average before and after. Output goes to `log_file` (or is discarded). The tree is
    killed after `timeout_s` or when its RSS passes `max_rss_mb` (a guard for a shared machine)."""
    load_before, busy_before = load_average(), round(busy_cores(0.3), 2)
    out = open(log_file, "w") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    tree_peak, single_peak = [0.0], [0.0]
    done = threading.Event()

    over_limit = threading.Event()

    def poll() -> None:
        while not done.is_set():
            total, largest = _tree_rss_mb(proc.pid)
            tree_peak[0], single_peak[0] = max(tree_peak[0], total), max(single_peak[0], largest)
            if max_rss_mb is not None and tree_peak[0] > max_rss_mb:
                over_limit.set()
            done.wait(poll_s)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    timed_out = False
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if over_limit.is_set() or (timeout_s is not None and time.perf_counter() - start > timeout_s):
                timed_out = not over_limit.is_set()
                os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: the child leads its own session
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    finally:
        done.set()
        watcher.join()
        if log_file:
            out.close()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "cmd": [str(c) for c in cmd],
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "stopped_over_memory_limit_mb": max_rss_mb if over_limit.is_set() else None,
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(max(tree_peak[0], usage.ru_maxrss / 1024), 1),
        "peak_rss_mb_process": round(usage.ru_maxrss / 1024, 1),
        "peak_rss_mb_tree_polled": round(tree_peak[0], 1),
        "peak_rss_mb_largest_process_polled": round(single_peak[0], 1),
        "load_average_before": load_before,
        "busy_cores_before": busy_before,
        "load_average_after": load_average(),
    }


# ============================================================================================
# results


def write_results(json_path: Path, report: dict[str, Any], markdown: str) -> None:
    """The report as JSON and its Markdown table next to it (same stem, .md)."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    json_path.with_suffix(".md").write_text(markdown.rstrip() + "\n")


def write_report(json_path: Path, benchmark: str, began: float, packages: tuple[str, ...], body: dict[str, Any], goals: dict[str, Any], render) -> dict[str, Any]:
    """A benchmark's report (what, when, on which machine, its figures and goals, how long the
    whole benchmark took since `began`), written as JSON + Markdown and printed."""
    report = {
        "benchmark": benchmark,
        "date": now_utc(),
        "machine": machine_info(packages),
        **body,
        "goals": goals,
        "total_runtime_s": round(time.perf_counter() - began, 1),
    }
    write_results(json_path, report, render(report))
    print(render(report))
    return report


def load_note(loads: list[list[float]], cores: int | None = None) -> str:
    """A sentence saying how busy the machine was during a set of measurements."""
    cores = cores or os.cpu_count() or 1
    if not loads:
        return ""
    one_minute = [x[0] for x in loads]
    busy = max(one_minute) > cores
    return (
        f"1-minute load average during these measurements: {min(one_minute):.1f}–{max(one_minute):.1f} on {cores} cores "
        + ("(above the core count at times: processes waited for a core, so those times are pessimistic)." if busy
           else "(never above the core count).")
    )
