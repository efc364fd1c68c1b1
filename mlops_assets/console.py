"""What the `mlops-assets` commands show: one line per step with its duration (replaced in
place on a terminal, plain lines otherwise), then a summary. Details and the libraries' logs
only with `-v`: the run's full log is in the Dagster UI either way."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import click

# Loggers that talk on their own (schema hints, "creating tables", GPU probing) at INFO/WARNING.
NOISY_LOGGERS = ("mlflow", "alembic", "urllib3", "jax", "absl", "numexpr", "matplotlib", "shap", "xgboost")
STEP_WIDTH = 10
LINE_WIDTH = 96


@dataclass
class Step:
    """A step being run: what it did (one line) and whether it broke."""

    name: str
    line: str = ""
    broken: bool = False


class Console:
    """Where a command writes. `echo` is the summary (always shown), `detail` only with -v."""

    def __init__(self, verbose: bool = False, stream=None):
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.live = not verbose and _is_terminal(self.stream)

    def echo(self, text: str = "") -> None:
        click.echo(text, file=self.stream)

    def detail(self, text: str = "") -> None:
        if self.verbose:
            self.echo(text)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time the block and print its one line when it ends (a crash prints it as broken)."""
        step = Step(name)
        if self.live:
            click.echo(f"{name:<{STEP_WIDTH - 1}} ...", file=self.stream, nl=False)
        started = time.perf_counter()
        try:
            yield step
        except BaseException:
            step.broken, step.line = True, step.line or "crashed"
            raise
        finally:
            self._finish(step, time.perf_counter() - started)

    def _finish(self, step: Step, seconds: float) -> None:
        text = f"{step.name:<{STEP_WIDTH - 1}} {step.line}"
        duration = f"{seconds:.1f}s"
        pad = max(1, LINE_WIDTH - len(text) - len(duration))
        prefix = "\r\x1b[K" if self.live else ""
        click.echo(f"{prefix}{text}{' ' * pad}{duration}", file=self.stream)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def quiet_libraries(verbose: bool) -> None:
    """Without -v: no Python warnings, no library INFO/WARNING lines, no download bars, and the
    Dagster console log only for what is broken (MLOPS_LOG_LEVEL, read by `quiet_run_config`).
    With -v: each run's whole Dagster log (its events at DEBUG) and the libraries at INFO."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if verbose:
        os.environ.setdefault("MLOPS_LOG_LEVEL", "DEBUG")  # every Dagster event of each run
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return
    os.environ.setdefault("MLOPS_LOG_LEVEL", "CRITICAL")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    warnings.filterwarnings("ignore")
    # Subprocesses (the serving smoke test) inherit this.
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def verbose_option(command):
    """`-v/--verbose` on a command: details and the libraries' logs."""
    return click.option("-v", "--verbose", is_flag=True, help="Show every detail and the libraries' logs.")(command)
