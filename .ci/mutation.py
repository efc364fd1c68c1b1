#!/usr/bin/env python3
"""Mutation testing of the modules that decide things (mutmut 3), one module at a time.

For each module a scratch folder `.mutation/<name>/` gets a mutmut config that mutates only
that file and selects only that module's fast unit tests; mutmut then runs, against each
mutant, just the selected tests that call the mutated function. The hand-made mutations of
docs/mutation_named.yaml (the survivors a review found, which mutmut's operators do not make)
are applied one by one to a scratch copy of the package and must each make a test fail.

Results are kept per module in docs/mutation_results.json and rendered to docs/mutation.md,
with the equivalent survivors of docs/mutation_equivalent.yaml and their reasons. Exit 1 if a
module run here scores below its threshold, has a survivor that is not listed as equivalent,
or a named mutation survives.

    python .ci/mutation.py                      # every module
    python .ci/mutation.py --fast               # promotion and landing modules, every named mutation (CI)
    python .ci/mutation.py --modules splitting  # some modules (names or paths)
    python .ci/mutation.py --modules features --survivors  # only the last run's survivors, after new tests
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
RESULTS = ROOT / "docs" / "mutation_results.json"
EQUIVALENT = ROOT / "docs" / "mutation_equivalent.yaml"
NAMED = ROOT / "docs" / "mutation_named.yaml"
DOC = ROOT / "docs" / "mutation.md"
PACKAGE, TESTS = "mlops_assets", "mlops_assets_tests"
THRESHOLD = 0.90
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


@dataclass(frozen=True)
class Module:
    name: str
    path: str  # the file mutated, relative to the repository
    tests: tuple[str, ...]  # its fast unit tests (paths or globs)
    fast: bool = False  # in the CI subset (`--fast`)
    threshold: float = THRESHOLD
    skip_lines: tuple[str, ...] = ()  # regexes of lines mutmut leaves alone (do_not_mutate_patterns)
    # "fork": mutants are forked from the process that ran the tests once (fastest). "forkserver":
    # from a clean process, for tests that leave threads behind (in-process Dagster runs), which
    # a fork would copy mid-lock.
    isolation: str = "fork"


MODULES = (
    Module("promotion", "mlops_assets/core/promotion.py", ("mlops_assets_tests/core/test_promotion.py",), fast=True),
    Module("registry_actions", "mlops_assets/registry_actions.py", ("mlops_assets_tests/defs/registry/test_registry_actions.py",)),
    Module("landing", "mlops_assets/resources/landing.py", ("mlops_assets_tests/resources/test_landing.py",), fast=True),
    Module("discovery", "mlops_assets/defs/ingestion/discovery.py", ("mlops_assets_tests/defs/ingestion/test_discovery.py",)),
    Module("quarantine", "mlops_assets/defs/ingestion/quarantine.py", ("mlops_assets_tests/defs/ingestion/test_quarantine.py",), isolation="forkserver"),
    # Polars deadlocks in a child forked after its thread pool ran (every mutant would time out
    # and count as killed): modules whose tests use polars run from a fork server.
    Module("splitting", "mlops_assets/core/splitting.py", ("mlops_assets_tests/core/test_splitting_*.py", "mlops_assets_tests/core/test_properties_splitting.py"), isolation="forkserver"),
    Module("features", "mlops_assets/core/features.py", ("mlops_assets_tests/core/test_features*.py", "mlops_assets_tests/core/test_frequencies.py", "mlops_assets_tests/core/test_calendar_and_observed.py", "mlops_assets_tests/core/test_missing_values.py", "mlops_assets_tests/core/test_properties_features.py"), isolation="forkserver"),
    Module("drift", "mlops_assets/core/drift.py", ("mlops_assets_tests/core/test_drift*.py", "mlops_assets_tests/core/test_properties_drift.py"), isolation="forkserver"),  # test_retrain_decision.py: same rules, ~25 s of fixtures per mutant
    Module("fairness", "mlops_assets/core/fairness.py", ("mlops_assets_tests/core/test_fairness*.py",), isolation="forkserver"),
)


@dataclass
class Mutant:
    name: str
    status: str
    function: str = ""
    line: int = 0
    before: str = ""
    after: str = ""
    reason: str = ""  # why it is equivalent, when docs/mutation_equivalent.yaml lists it



@dataclass
class Outcome:
    module: Module
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[Mutant] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def killed(self) -> int:
        return sum(n for status, n in self.counts.items() if status in KILLED)


# ---------------------------------------------------------------- running mutmut on one module


def test_paths(module: Module) -> list[str]:
    found = []
    for pattern in module.tests:
        matches = sorted(glob.glob(pattern, root_dir=ROOT)) if glob.has_magic(pattern) else [pattern]
        found += [m for m in matches if (ROOT / m).exists() and m not in found]
    return found


def prepare_scratch(module: Module, tests: list[str]) -> Path:
    """A fresh `.mutation/<name>/` with the package and tests linked and a mutmut config for
    this module alone (mutmut copies both into `mutants/` and runs there)."""
    folder = SCRATCH / module.name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name in (PACKAGE, TESTS):
        (folder / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "setup.cfg", folder / "setup.cfg")
    config = {
        "source_paths": [PACKAGE],
        "only_mutate": [module.path],
        "also_copy": [TESTS],
        "pytest_add_cli_args_test_selection": tests,
        # pytest's unraisable/thread-exception plugins gc.collect() the whole (dagster-sized) heap
        # at the end of every session: two thirds of the cost of testing a mutant.
        "pytest_add_cli_args": ["-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:xdist", "-p", "no:unraisableexception", "-p", "no:threadexception"],
        "do_not_mutate_patterns": list(module.skip_lines),
        "use_git_change_detection": False,
        "process_isolation": module.isolation,
        **timeout_limits(module),
    }
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    (folder / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return folder


def timeout_limits(module: Module) -> dict[str, float]:
    """mutmut stops a mutant's tests after (tests' seconds + constant) x multiplier of wall
    time (twice that in CPU time). Forked from the test process, a mutant's tests take well
    under a second: ~30 s is room enough on a loaded machine and makes a mutant that loops
    forever (a read loop's end marker changed) cost half a minute, not ten. From the fork
    server, where starting takes longer, it is generous: a loaded machine (2 shared cores)
    must not turn a slow survivor into a "timeout" (counted as killed)."""
    if module.isolation == "forkserver":
        return {"timeout_constant": 20.0, "timeout_multiplier": 15.0}
    return {"timeout_constant": 5.0, "timeout_multiplier": 5.0}


def run_mutmut(module: Module, folder: Path, children: int, names: list[str] | None = None) -> str:
    """Run mutmut in `folder` (on every mutant, or again on `names`); the error (with the
    log's tail) if it did not finish."""
    log = folder / ("mutmut.log" if not names else "mutmut-rerun.log")
    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "PYTHONDONTWRITEBYTECODE": "1"}
    mutmut = Path(sys.executable).parent / "mutmut"
    with log.open("w") as out:
        command = [str(mutmut), "run", "--max-children", str(children), *(names or [])]
        done = subprocess.run(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode == 0:
        return ""
    tail = log.read_text(errors="replace")[-3000:]
    return f"mutmut exited {done.returncode} on {module.path} (log {log.relative_to(ROOT)}):\n{tail}"


def statuses(folder: Path, module: Module) -> dict[str, str]:
    """Mutant name -> mutmut status, from the run's metadata."""
    from mutmut.stats import status_by_exit_code

    meta = json.loads((folder / "mutants" / f"{module.path}.meta").read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}


def function_spans(source: str) -> dict[str, tuple[int, int]]:
    """Function name -> (first, last) line, methods as Class.method."""
    spans = {}
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[f"{node.name}.{item.name}"] = (item.lineno, item.end_lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans.setdefault(node.name, (node.lineno, node.end_lineno))
    return spans


def describe(folder: Path, module: Module, name: str, status: str) -> Mutant:
    """Where a mutant is and what it changed, from mutmut's diff of the function."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    function, cls = orig_function_and_class_names_from_key(name)
    qualified = f"{cls}.{function}" if cls else function
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        diff = get_diff_for_mutant(name, path=module.path).splitlines()
    finally:
        os.chdir(cwd)
    before = "\n".join(line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---"))
    after = "\n".join(line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++"))
    return Mutant(name, status, qualified, source_line(module, qualified, before), before, after)


def source_line(module: Module, function: str, before: str) -> int:
    """The line in the module of the first line a mutation changed."""
    lines = (ROOT / module.path).read_text().splitlines()
    first, last = function_spans("\n".join(lines)).get(function, (1, len(lines)))
    wanted = before.split("\n", 1)[0]
    for number in range(first, last + 1):
        if lines[number - 1].strip() == wanted:
            return number
    return first


def mutate(module: Module, folder: Path, children: int) -> tuple[dict[str, str], str]:
    """(mutant -> status, error). With wall-time limits (fork server), mutants that timed out
    are run again once, one at a time: a slow run on a loaded machine is no kill. Most mutants
    timing out (twice) is an error."""
    error = run_mutmut(module, folder, children)
    found = {} if error else statuses(folder, module)
    timed_out = [name for name, status in found.items() if status == "timeout"]
    if timed_out and module.isolation == "forkserver":
        error = run_mutmut(module, folder, 1, timed_out)
        found = {} if error else statuses(folder, module)
        timed_out = [name for name, status in found.items() if status == "timeout"]
    if found and len(timed_out) > len(found) / 2:
        error = (f"{len(timed_out)} of {len(found)} mutants timed out twice: the tests hang in a forked child "
                 "(threads copied mid-lock?); give the module isolation=\"forkserver\"")
    return found, error


def mutate_module(module: Module, children: int) -> Outcome:
    started = time.monotonic()
    outcome = Outcome(module)
    tests = test_paths(module)
    if not tests:
        outcome.error = f"no test file of {module.tests} exists"
        return outcome
    folder = prepare_scratch(module, tests)
    found, outcome.error = mutate(module, folder, children)
    if not outcome.error:
        for name, status in found.items():
            outcome.counts[status] = outcome.counts.get(status, 0) + 1
            if status not in KILLED:
                outcome.survivors.append(describe(folder, module, name, status))
    outcome.survivors.sort(key=lambda m: (m.line, m.name))
    outcome.seconds = time.monotonic() - started
    return outcome


def source_hash(module: Module) -> str:
    import hashlib

    return hashlib.sha256((ROOT / module.path).read_bytes()).hexdigest()


def resurvey_module(module: Module, children: int, previous: dict | None) -> Outcome:
    """Test only the last full run's survivors again, against the current tests (after new
    tests were written for them). Sound only while the mutated file is unchanged since that
    run (the mutants are the same and adding tests cannot revive a killed one): checked by the
    file's hash, else the module must be run in full."""
    started = time.monotonic()
    outcome = Outcome(module)
    if not previous or previous.get("error") or previous.get("source_sha256") != source_hash(module):
        outcome.error = f"{module.path} changed since its last full run (or it has none): run it in full (--modules {module.name})"
        return outcome
    tests = test_paths(module)
    folder = prepare_scratch(module, tests)
    names = [s["name"] for s in previous["survivors"]]
    outcome.error = run_mutmut(module, folder, children, names) if names else ""
    found = {} if outcome.error or not names else statuses(folder, module)
    timed_out = [n for n in names if found.get(n) == "timeout"]
    if timed_out and not outcome.error:
        outcome.error = run_mutmut(module, folder, 1, timed_out)
        found = {} if outcome.error else statuses(folder, module)
    if outcome.error:
        return outcome
    outcome.counts = dict(previous["counts"])
    for old in previous["survivors"]:
        new = found[old["name"]]
        outcome.counts[old["status"]] -= 1
        outcome.counts[new] = outcome.counts.get(new, 0) + 1
        if new not in KILLED:
            outcome.survivors.append(describe(folder, module, old["name"], new))
    outcome.counts = {k: v for k, v in outcome.counts.items() if v}
    outcome.survivors.sort(key=lambda m: (m.line, m.name))
    outcome.seconds = time.monotonic() - started
    return outcome


# ---------------------------------------------------------------- equivalents and named mutations


def load_yaml(path: Path) -> dict:
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def listed_equivalents(equivalents: dict, path: str) -> dict[tuple[str, str, str], dict]:
    """(function, before, after) -> entry, for the equivalents listed for file `path`."""
    return {(e["function"], e["before"].strip(), e["after"].strip()): e for e in equivalents.get(path) or []}


def explain(path: str, survivors: list[dict], equivalents: dict) -> list[dict]:
    """Give each survivor the reason it is listed as equivalent (or ""); return the listed
    entries that no longer survive."""
    by_key = listed_equivalents(equivalents, path)
    keys = set()
    for survivor in survivors:
        key = (survivor["function"], survivor["before"], survivor["after"])
        survivor["reason"] = by_key[key]["reason"] if key in by_key else ""
        keys.add(key)
    return [e for key, e in by_key.items() if key not in keys]


def score(record: dict) -> float:
    """Killed among the mutants that can be killed (all but the listed equivalents)."""
    killable = record["total"] - sum(1 for s in record["survivors"] if s["reason"])
    return record["killed"] / killable if killable else 1.0


def scratch_copy(into: Path) -> None:
    """The package and its tests as real files (a linked test folder would let pytest import
    the unmutated package through the link's target)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / PACKAGE, into / PACKAGE, ignore=ignore)
    shutil.copytree(ROOT / TESTS, into / TESTS, ignore=ignore)
    shutil.copy(ROOT / "setup.cfg", into / "setup.cfg")


def run_named(entry: dict) -> dict:
    """Apply one hand-made mutation to a scratch copy and run its tests: killed when pytest
    reports failed tests (exit 1), with the names of the tests that failed."""
    with tempfile.TemporaryDirectory(prefix="mutation-named-") as tmp:
        where = Path(tmp)
        scratch_copy(where)
        target = where / entry["file"]
        source = target.read_text()
        if source.count(entry["before"]) != 1:
            return {**entry, "status": "not applied", "detail": f"`before` found {source.count(entry['before'])} times in {entry['file']}, not once"}
        target.write_text(source.replace(entry["before"], entry["after"]))
        command = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:randomly", "-p", "no:cacheprovider", *entry["tests"]]
        env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "PYTHONPATH": str(where), "PYTHONDONTWRITEBYTECODE": "1"}
        done = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True)
    failed = sorted(set(re.findall(r"^FAILED (\S+)", done.stdout, flags=re.M)))
    status = "killed" if done.returncode == 1 and failed else "survived" if done.returncode == 0 else f"error (pytest exit {done.returncode})"
    detail = ", ".join(f"`{f}`" for f in failed) or done.stdout[-1500:]
    return {**entry, "status": status, "detail": detail}


def named_for(modules: list[Module], ids: str | None, every: bool = False) -> list[dict]:
    """The named mutations asked for by id, else those of the modules run, or `every` one (not
    the `manual` ones: their tests are too slow for every run)."""
    entries = load_yaml(NAMED).get("named", [])
    if ids:
        wanted = {i.strip() for i in ids.split(",")}
        unknown = wanted - {e["id"] for e in entries}
        if unknown:
            sys.exit(f"unknown named mutations {sorted(unknown)}; known: {[e['id'] for e in entries]}")
        return [e for e in entries if e["id"] in wanted]
    paths = {m.path for m in modules}
    return [e for e in entries if (every or e["file"] in paths) and not e.get("manual")]


# ---------------------------------------------------------------- results file and doc


def outcome_record(outcome: Outcome) -> dict:
    return {
        "module": outcome.module.name,
        "path": outcome.module.path,
        "tests": test_paths(outcome.module),
        "threshold": outcome.module.threshold,
        "run_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(outcome.seconds, 1),
        "total": outcome.total,
        "killed": outcome.killed,
        "counts": outcome.counts,
        "error": outcome.error,
        "survivors": [vars(m) for m in outcome.survivors],
        "source_sha256": source_hash(outcome.module),
    }


def save_results(records: list[dict], named: list[dict]) -> None:
    """Merge this run's modules into the results file and render the doc, under a lock (two
    runs on different modules may end at the same time)."""
    import fcntl

    SCRATCH.mkdir(exist_ok=True)
    with (SCRATCH / "results.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"modules": {}, "named": {}}
        for record in records:
            results["modules"][record["module"]] = record
        for entry in named:
            results["named"][entry["id"]] = entry
        doc = render(results)  # first: it refreshes each record's equivalents and score
        RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        DOC.write_text(doc)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def md_code(text: str) -> str:
    return "`" + text.replace("`", "'").replace("|", "\\|").replace("\n", " ⏎ ") + "`" if text else "(removed)"


def render(results: dict) -> str:
    equivalents = load_yaml(EQUIVALENT)
    for record in results["modules"].values():
        record["stale_equivalents"] = explain(record["path"], record["survivors"], equivalents)
        record["score"] = round(score(record), 4)
    out = [DOC_HEAD, "## Score per module", "", "| module | file | mutants | killed | equivalent | other survivors | score | threshold | run at | seconds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for module in MODULES:
        r = results["modules"].get(module.name)
        if not r:
            out.append(f"| {module.name} | `{module.path}` | not run yet | | | | | {pct(module.threshold)} | | |")
            continue
        equivalent = sum(1 for s in r["survivors"] if s["reason"])
        other = len(r["survivors"]) - equivalent
        shown = "error" if r["error"] else pct(r["score"])
        out.append(f"| {module.name} | `{r['path']}` | {r['total']} | {r['killed']} | {equivalent} | {other} | {shown} | {pct(r['threshold'])} | {ran(r)} | {r['seconds']} |")
    out += ["", "Score = killed / (mutants − listed equivalents). Killed includes timeouts. A module whose survivors were",
            "re-tested after new tests (`--survivors`, allowed only while its file is unchanged) shows both times.", ""]
    out += render_named(results["named"])
    out += render_survivors(results)
    return "\n".join(out) + "\n"


def ran(record: dict) -> str:
    if record.get("full_run_at"):
        return f"{record['full_run_at']} (survivors re-tested {record['run_at']})"
    return record["run_at"]


def render_named(named: dict) -> list[str]:
    out = ["## Named mutations (hand-made, re-applied on every run)", "", "| id | file | mutation | status | tests that fail |", "|---|---|---|---|---|"]
    for entry in named.values():
        out.append(f"| {entry['id']} | `{entry['file']}` | {md_code(entry['before'])} → {md_code(entry['after'])} | {entry['status']} | {entry['detail'] if entry['status'] == 'killed' else md_code(entry['detail'][-300:])} |")
    return out + [""]


def render_survivors(results: dict) -> list[str]:
    out = ["## Survivors", "", "Equivalent survivors are listed with their reason in `docs/mutation_equivalent.yaml` (hand-written; the driver reads it).", ""]
    for module in MODULES:
        r = results["modules"].get(module.name)
        if not r:
            continue
        out += [f"### {module.name} (`{r['path']}`)", "", f"Tests: {', '.join(f'`{t}`' for t in r['tests'])}", ""]
        if r["error"]:
            out += ["```", r["error"][-1500:], "```", ""]
        if not r["survivors"]:
            out += ["No survivors.", ""]
            continue
        out += ["| line | function | mutation | status | equivalent because |", "|---|---|---|---|---|"]
        for s in r["survivors"]:
            out.append(f"| {r['path']}:{s['line']} | `{s['function']}` | {md_code(s['before'])} → {md_code(s['after'])} | {s['status']} | {s['reason'] or '**not explained: kill it or list it**'} |")
        for e in r.get("stale_equivalents", []):
            out.append(f"| - | `{e['function']}` | {md_code(e['before'])} → {md_code(e['after'])} | listed, no longer survives | (remove from the list) |")
        out.append("")
    return out


DOC_HEAD = """# Mutation testing

`make mutation` runs mutmut over the modules that decide things (promotion rules and actions,
the landing zone, discovery, quarantine, splitting, feature lags, drift and fairness verdicts);
`make mutation-fast` runs the promotion and landing modules and every named mutation (part of `.ci/run`). One
module at a time: mutmut mutates that file alone and runs, against each mutant, only the
module's fast unit tests that call the mutated function. This page is written by
`.ci/mutation.py`; `make mutation MODULES=landing,discovery` refreshes some modules' rows.

A run fails when a module scores below its threshold, when a survivor is neither killed nor
listed as equivalent with a reason in `docs/mutation_equivalent.yaml`, or when a named
mutation (`docs/mutation_named.yaml`: mutations a review made by hand that mutmut's operators
do not make) is not killed.

When a survivor appears: `cd .mutation/<module> && ../../.venv/bin/mutmut show <mutant>` shows
it; kill it with a test that checks what the mutated code decides, or, if no test can tell it
from the original, add it (function, before, after, as shown below) with the reason to
`docs/mutation_equivalent.yaml` and run `.ci/mutation.py --render-only`. After writing tests
for a module's survivors, `.ci/mutation.py --modules <module> --survivors` tests only those
survivors again (minutes instead of a full run); it refuses when the module's file changed since
its full run, since the mutants would no longer be the same.

Test modules must not run polars while they are imported (a frame built in a parametrize list):
that starts polars' thread pool in the process mutmut forks every mutant from, and each forked
mutant then hangs. The suite's conftest refuses such a module by name.
"""


# ---------------------------------------------------------------- main


def selected(args: argparse.Namespace) -> list[Module]:
    if args.modules:
        wanted = {w.strip() for w in args.modules.split(",") if w.strip()}
        chosen = [m for m in MODULES if m.name in wanted or m.path in wanted]
        unknown = wanted - {m.name for m in chosen} - {m.path for m in chosen}
        if unknown:
            sys.exit(f"unknown modules {sorted(unknown)}; known: {[m.name for m in MODULES]}")
        return chosen
    return [m for m in MODULES if m.fast] if args.fast else list(MODULES)


def failures(record: dict) -> list[str]:
    name = record["module"]
    if record["error"]:
        return [f"{name}: {record['error']}"]
    found = []
    if record["score"] < record["threshold"]:
        found.append(f"{name}: score {pct(record['score'])} < {pct(record['threshold'])}")
    unexplained = [s for s in record["survivors"] if not s["reason"]]
    found += [f"{name}: survivor not explained: {record['path']}:{s['line']} {s['function']}: {s['before']!r} -> {s['after']!r} ({s['status']}, {s['name']})" for s in unexplained]
    return found


def summary(record: dict) -> str:
    unexplained = sum(1 for s in record["survivors"] if not s["reason"])
    return (f"{record['module']:18} {record['killed']}/{record['total']} killed, {len(record['survivors'])} survivors "
            f"({unexplained} not explained), score {pct(record['score'])}, {record['seconds']:.0f}s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="only the modules in the CI subset")
    parser.add_argument("--modules", help="comma-separated module names or paths")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--no-named", action="store_true", help="skip the named hand-made mutations")
    parser.add_argument("--render-only", action="store_true", help="only rewrite docs/mutation.md (after editing the equivalents)")
    parser.add_argument("--named", help="only these named mutations (comma-separated ids), no mutmut run")
    parser.add_argument("--survivors", action="store_true", help="re-test only the last full run's survivors (the module's file must be unchanged)")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    modules = [] if args.render_only or args.named else selected(args)
    started, records, problems = time.monotonic(), [], []
    previous = json.loads(RESULTS.read_text())["modules"] if RESULTS.exists() else {}
    for module in modules:
        if args.survivors:
            outcome = resurvey_module(module, args.max_children, previous.get(module.name))
        else:
            outcome = mutate_module(module, args.max_children)
        record = outcome_record(outcome)
        if args.survivors and not outcome.error:
            record["full_run_at"] = previous[module.name].get("full_run_at") or previous[module.name]["run_at"]
        record["stale_equivalents"] = explain(record["path"], record["survivors"], load_yaml(EQUIVALENT))
        record["score"] = round(score(record), 4)
        records.append(record)
        problems += failures(record)
        print(summary(record), flush=True)
    named = [] if args.no_named or args.render_only else [run_named(e) for e in named_for(modules, args.named, every=args.fast)]
    for entry in named:
        print(f"named {entry['id']:28} {entry['status']}", flush=True)
        if entry["status"] != "killed":
            problems.append(f"named mutation {entry['id']} {entry['status']}: {entry['detail'][-500:]}")
    save_results(records, named)
    print(f"{DOC.relative_to(ROOT)} written; {time.monotonic() - started:.0f}s in all", flush=True)
    for problem in problems:
        print(f"FAIL {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
