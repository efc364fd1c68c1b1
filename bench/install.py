"""Fresh-machine install: a fresh clone to a champion model (`make install`, then `make demo`).

    python bench/install.py [--baseline-ref REF] [--demos cold|all|none] [--keep] [--out bench/results/install.json]

The budget (issue #17): `make demo` from a fresh clone, install included, under 90 s on 2 cores.

The clone is `git clone` of this checkout's HEAD with the working tree's uncommitted changes laid
over it (modified and new, unignored files; deleted ones removed; `--files PATH...`: only those),
in a temporary folder. In it:

1. cold: `make install` with empty uv and pip caches (UV_CACHE_DIR, PIP_CACHE_DIR: new temporary
   folders), as on a machine that never installed the project; then `make demo` (MLOPS_HOME under
   the clone: nothing landed or trained before). Cold install + demo = fresh clone to champion.
2. warm: `.venv/` and `.mlops/` removed, `make install` again with the caches the cold run filled
   (a second clone on the same machine); `make demo` again only with `--demos all` (the same demo:
   otherwise the cold run's demo time is added to the warm install).
3. the virtualenv's size (`du`, right after the install, before any `.pyc` is written by a run) and
   its largest distributions (the files each one's RECORD lists).

`--baseline-ref REF` also measures the cold install at REF (the pip-based install before uv and
the lock file; its demo with `--demos all`) in a second clone, on the same machine at about the
same time: the comparison is then not against a figure from another day's load. The default compares against
the figures noted in issue #17 without re-running them.

Every step is timed from here (wall and CPU time of the whole process tree, the load average
before and after), each step's output goes to bench/results/logs/install_<step>.log, and the
figures to bench/results/install.json and .md. The temporary clones are deleted (`--keep` keeps
them). Run it niced on a shared machine: `nice -n 10 python bench/install.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import RESULTS_DIR, load_note, run_measured, wait_for_quiet, write_report  # noqa: E402

DEFAULT_OUT = RESULTS_DIR / "install.json"
LOG_DIR = RESULTS_DIR / "logs"
BUDGET_S = 90.0
TIMEOUT_S = 1800.0
# Before uv, xgboost-cpu and the lock (issue #17, item 7): the pip install of '.[test]'.
BEFORE = {
    "source": "issue #17 item 7 (pip install -e '.[test]' of xgboost; not re-measured here)",
    "fresh_clone_to_champion_s": 138.0,
    "venv_mb": 2.7 * 1024,
    "largest": "nvidia-nccl-cu12 469 MB (pulled in by xgboost, used by nothing here)",
}
TOP_N = 5


def clean_env(caches: Path) -> dict[str, str]:
    """This environment less any deployment or virtualenv variables, with the install caches in
    `caches` (empty the first time: cold)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "DAGSTER_", "UV_")) and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PIP_CACHE_DIR")}
    env["UV_CACHE_DIR"] = str(caches / "uv")
    env["PIP_CACHE_DIR"] = str(caches / "pip")
    env["KERAS_BACKEND"] = "jax"
    return env


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def fresh_clone(dest: Path, ref: str | None = None, only: list[str] | None = None) -> str:
    """`git clone` of this checkout into `dest`: at `ref` as committed, or (no ref) at HEAD with
    the working tree's uncommitted changes laid over it (only those under `only`, if given).
    Returns a description of what was cloned."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(dest)], check=True)
    if ref:
        git("checkout", "--quiet", ref, cwd=dest)
        return git("rev-parse", "HEAD", cwd=dest).strip()
    pathspec = ["--", *only] if only else []
    changed = [p for p in git("ls-files", "-z", "--modified", "--others", "--exclude-standard", *pathspec).split("\0") if p]
    deleted = set(p for p in git("ls-files", "-z", "--deleted", *pathspec).split("\0") if p)
    for rel in changed:
        if rel in deleted:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    for rel in deleted:
        (dest / rel).unlink(missing_ok=True)
    head = git("rev-parse", "HEAD").strip()
    kept = sorted(set(changed) - deleted)
    if not (kept or deleted):
        return head
    listed = ", ".join(kept) if len(kept) <= 6 else f"{len(kept)} files"
    return f"{head[:12]} + uncommitted {listed}" + (f", {len(deleted)} deleted" if deleted else "")


def du_mb(path: Path) -> float:
    """Disk use of `path` (`du -sk`), MB."""
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True).stdout
    return round(int(out.split()[0]) / 1024, 1)


def largest_distributions(venv: Path, top: int = TOP_N) -> list[dict[str, Any]]:
    """The `top` installed distributions by the size of the files their RECORD lists, MB."""
    site = next(venv.glob("lib/python*/site-packages"))
    sizes: list[tuple[str, str, float]] = []
    for info in site.glob("*.dist-info"):
        record = info / "RECORD"
        if not record.exists():
            continue
        name, version = info.name[: -len(".dist-info")].rsplit("-", 1)
        for line in (info / "METADATA").read_text(errors="replace").splitlines():
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
                break
        total, seen = 0, set()
        for row in record.read_text(errors="replace").splitlines():
            rel = row.rsplit(",", 2)[0]
            path = (site / rel).resolve() if rel else None
            if path is None or path in seen:
                continue
            seen.add(path)
            try:
                total += path.lstat().st_size
            except OSError:
                continue
        sizes.append((name, version, total / 2**20))
    sizes.sort(key=lambda t: -t[2])
    return [{"distribution": n, "version": v, "mb": round(mb, 1)} for n, v, mb in sizes[:top]]


def pyc_mb(venv: Path) -> float:
    """Bytecode already compiled in the virtualenv, MB (pip compiles at install; uv only with
    UV_COMPILE_BYTECODE=1; otherwise Python writes it on first import unless PYTHONDONTWRITEBYTECODE)."""
    return round(sum(p.stat().st_size for p in venv.rglob("*.pyc")) / 2**20, 1)


def installed(venv: Path, *names: str) -> dict[str, str]:
    """Which of `names` are installed in `venv` (version, or absent)."""
    site = next(venv.glob("lib/python*/site-packages"))
    out = {}
    for name in names:
        norm = name.lower().replace("-", "_")
        hits = [p.name for p in site.glob("*.dist-info") if p.name.lower().split("-")[0] == norm]
        out[name] = hits[0][: -len(".dist-info")].rsplit("-", 1)[1] if hits else "absent"
    return out


def step(name: str, cmd: list[str], clone: Path, env: dict[str, str], quiet_wait_s: float) -> dict[str, Any]:
    """One timed command in the clone (after waiting up to `quiet_wait_s` for the other cores to
    go quiet); its output to bench/results/logs/install_<name>.log."""
    busy = wait_for_quiet(quiet_wait_s)
    log = LOG_DIR / f"install_{name}.log"
    print(f"-- {name}: {' '.join(cmd)} (log: {log.relative_to(ROOT)})", flush=True)
    run = run_measured(cmd, env=env, cwd=clone, timeout_s=TIMEOUT_S, log_file=log)
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
    out = {
        "step": name,
        "cmd": " ".join(cmd),
        "returncode": run["returncode"],
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "peak_rss_mb": run["peak_rss_mb"],
        "busy_cores_before": round(busy, 2),
        "load_average_before": run["load_average_before"],
        "load_average_after": run["load_average_after"],
        "last_line": tail[0] if tail else "",
    }
    print(f"   {'ok' if run['returncode'] == 0 else 'FAILED'} in {run['wall_s']:.1f} s (CPU {run['cpu_s']:.1f} s); {out['last_line']}", flush=True)
    if run["returncode"] != 0:
        raise SystemExit(f"{name} failed (exit {run['returncode']}): see {log}")
    return out


def install_and_demo(label: str, clone: Path, caches: Path, demo: bool, quiet_wait_s: float, demo_s: float | None = None) -> dict[str, Any]:
    """`make install` then (optionally) `make demo` in `clone`; sizes after the install."""
    env = clean_env(caches)
    inst = step(f"{label}_install", ["make", "install"], clone, env, quiet_wait_s)
    venv = clone / ".venv"
    out: dict[str, Any] = {
        "install": inst,
        "venv_mb": du_mb(venv),
        "largest": largest_distributions(venv),
        "packages": len(list(next(venv.glob("lib/python*/site-packages")).glob("*.dist-info"))),
        "pyc_mb": pyc_mb(venv),
        "check": installed(venv, "xgboost", "xgboost-cpu", "nvidia-nccl-cu12", "uv", "pyinstrument", "torch"),
        "cache_mb": {"uv": du_mb(caches / "uv") if (caches / "uv").exists() else 0.0, "pip": du_mb(caches / "pip") if (caches / "pip").exists() else 0.0},
    }
    if demo:
        d = step(f"{label}_demo", ["make", "demo"], clone, env, quiet_wait_s)
        d["result_ok"] = d["last_line"].strip().startswith("result: OK")
        out["demo"] = d
        out["fresh_clone_to_champion_s"] = round(inst["wall_s"] + d["wall_s"], 1)
    elif demo_s is not None:  # the demo measured after the cold install
        out["fresh_clone_to_champion_s"] = round(inst["wall_s"] + demo_s, 1)
        out["demo_s_from"] = "cold"
    return out


def fmt_s(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{seconds:.0f} s" if m == 0 else f"{seconds:.0f} s = {m} min {s:02d} s"


def markdown(report: dict[str, Any]) -> str:
    cold, warm, base = report["cold"], report["warm"], report.get("baseline")
    m = report["machine"]
    lines = [
        f"Fresh clone ({report['clone']}) to a champion: `make install` (uv {report['uv_version']} from `requirements.lock`, {cold['packages']} distributions) "
        f"then `make demo`; {m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB, Python {m['python']}; {report['date'][:10]}. "
        "Cold: empty uv and pip caches (nothing downloaded before); warm: the caches the cold run filled, a new `.venv/`.",
        "",
        "| | make install (s) | make demo (s) | fresh clone → champion (s) | install CPU (s) | venv (MB) | load avg (1 min) before install → after demo |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]

    def row(label: str, r: dict[str, Any]) -> str:
        d = r.get("demo")
        after = (d or r["install"])["load_average_after"][0]
        demo_cell = f"{d['wall_s']:.1f}" if d else ("(cold's)" if "fresh_clone_to_champion_s" in r else "–")
        total = f"{r['fresh_clone_to_champion_s']:.1f}" if "fresh_clone_to_champion_s" in r else "–"
        return f"| {label} | {r['install']['wall_s']:.1f} | {demo_cell} | {total} | {r['install']['cpu_s']:.1f} | {r['venv_mb']:.0f} | {r['install']['load_average_before'][0]} → {after} |"

    lines.append(row("uv + lock, cold cache", cold))
    lines.append(row("uv + lock, warm cache", warm))
    if base:
        lines.append(row(f"before: pip at {base['ref'][:7]}, cold cache", base))
    lines.append(f"| before (issue #17, not re-measured) | | | {BEFORE['fresh_clone_to_champion_s']:.0f} | | {BEFORE['venv_mb']:.0f} | |")
    lines += [
        "",
        "Largest distributions (MB, files listed in RECORD): " + ", ".join(f"{x['distribution']} {x['mb']:.0f}" for x in cold["largest"]) + "."
        + (" Before (pip): " + ", ".join(f"{x['distribution']} {x['mb']:.0f}" for x in base["largest"]) + "." if base else f" Before: {BEFORE['largest']}."),
        f"nvidia-nccl-cu12: {cold['check']['nvidia-nccl-cu12']}; xgboost-cpu {cold['check']['xgboost-cpu']} (plain xgboost: {cold['check']['xgboost']}). "
        f"Download cache filled by the cold install: uv {cold['cache_mb']['uv']:.0f} MB, pip {cold['cache_mb']['pip']:.0f} MB.",
        "",
        bytecode_note(report),
        "",
        f"Budget: fresh clone → champion under {BUDGET_S:.0f} s on 2 cores: cold cache {'met' if report['goals']['cold_met'] else '**not met**'} "
        f"({fmt_s(cold['fresh_clone_to_champion_s'])}), warm cache {'met' if report['goals']['warm_met'] else '**not met**'} ({fmt_s(warm['fresh_clone_to_champion_s'])}); "
        f"every demo ended with `result: OK`: {'yes' if report['goals']['demo_ok'] else '**no**'}. "
        f"CPU time (user + system, whole process tree) of the cold install + demo: {report['goals']['cold_cpu_s']:.0f} s.",
        "",
        load_note(report["loads"], m.get("cpu_affinity") or m.get("cpu_count")),
        "",
    ]
    return "\n".join(lines)


def bytecode_note(report: dict[str, Any]) -> str:
    """What the demo paid for bytecode: pip compiles every module at install; uv does not, and with
    PYTHONDONTWRITEBYTECODE set no process writes any, so each one compiles what it imports."""
    env = report.get("env", {})
    base = report.get("baseline")
    pyc = lambda r: f"{r['pyc_mb']:.0f} MB" if "pyc_mb" in r else "not measured"  # noqa: E731
    return (
        f"Bytecode (.pyc) in the venv after the install: uv {pyc(report['cold'])}" + (f", pip {pyc(base)}" if base else "")
        + " (pip compiles every module at install time, inside its install time; uv only with UV_COMPILE_BYTECODE=1). "
        + (f"PYTHONDONTWRITEBYTECODE={env['PYTHONDONTWRITEBYTECODE']} during this run: Python wrote no .pyc, so every process of the demo "
           "compiled the modules it imported from source." if env.get("PYTHONDONTWRITEBYTECODE") else
           "Python wrote .pyc files on first import during the demo.")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline-ref", help="also measure a cold install + demo at this commit (e.g. the last pip-based one)")
    parser.add_argument("--demos", choices=("cold", "all", "none"), default="cold", help="after which installs to run make demo (default: the cold one only)")
    parser.add_argument("--files", nargs="+", help="lay only these uncommitted paths over HEAD (default: every uncommitted change in the working tree)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones and caches")
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds to wait at most for other processes to leave the cores before each step")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench_install_"))
    try:
        clone, caches = work / "clone", work / "caches"
        described = fresh_clone(clone, only=args.files)
        uv_version = next((line.split(":=", 1)[1].strip() for line in (clone / "Makefile").read_text().splitlines() if line.startswith("UV_VERSION")), "?")
        demo = args.demos != "none"
        cold = install_and_demo("cold", clone, caches, demo, args.quiet_wait)
        demo_s = cold["demo"]["wall_s"] if demo else None
        shutil.rmtree(clone / ".venv")
        shutil.rmtree(clone / ".mlops", ignore_errors=True)
        warm = install_and_demo("warm", clone, caches, args.demos == "all", args.quiet_wait, demo_s)
        body: dict[str, Any] = {"clone": described, "uv_version": uv_version, "cold": cold, "warm": warm, "before_issue_17": BEFORE,
                                "env": {k: os.environ.get(k, "") for k in ("PYTHONDONTWRITEBYTECODE", "UV_COMPILE_BYTECODE")}}
        if args.baseline_ref:
            base_clone = work / "baseline"
            if not args.keep:
                shutil.rmtree(clone, ignore_errors=True)  # disk: a pip virtualenv is several GB
            ref = fresh_clone(base_clone, args.baseline_ref)
            body["baseline"] = {"ref": ref, **install_and_demo("baseline", base_clone, work / "baseline_caches", args.demos == "all", args.quiet_wait, demo_s)}
        runs = [r for r in (cold, warm, body.get("baseline")) if r]
        body["loads"] = [x for r in runs for s in (r["install"], r.get("demo")) if s for x in (s["load_average_before"], s["load_average_after"])]
        goals = {
            "budget_s": BUDGET_S,
            "cold_met": demo and cold["fresh_clone_to_champion_s"] < BUDGET_S,
            "warm_met": demo and warm["fresh_clone_to_champion_s"] < BUDGET_S,
            "demo_ok": demo and all(r["demo"]["result_ok"] for r in runs if "demo" in r),
            "cold_cpu_s": round(cold["install"]["cpu_s"] + (cold["demo"]["cpu_s"] if demo else 0.0), 1),
            "no_nccl": cold["check"]["nvidia-nccl-cu12"] == "absent",
        }
        write_report(args.out, "fresh clone to champion: make install + make demo", began, (), body, goals, markdown if demo else (lambda r: str(r["cold"])))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
