import os
import re
import tempfile
from pathlib import Path

import dagster as dg
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
# Every test that trains the LSTM on the demo shapes compiles the same XLA programs: compile once
# per machine (workers and CLI subprocesses inherit these), not once per training.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "mlops_assets_jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

from hypothesis import HealthCheck, Phase  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402

# Property tests (core/test_properties_*.py): a bounded example count, derandomized (the same
# examples on every run and in any test order), no example database. HYPOTHESIS_PROFILE=deep
# draws many random examples when hunting a bug (a failure prints its reproduction blob).
# Under mutmut (MUTANT_UNDER_TEST set) the suite's examples without shrinking: a mutant is
# killed by the first failing example, not after minutes of shrinking it.
_PROPERTY_DEFAULTS = dict(deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.register_profile("suite", max_examples=30, derandomize=True, **_PROPERTY_DEFAULTS)
hypothesis_settings.register_profile("deep", max_examples=1000, **_PROPERTY_DEFAULTS)
hypothesis_settings.register_profile(
    "mutation", parent=hypothesis_settings.get_profile("suite"), phases=(Phase.explicit, Phase.generate), report_multiple_bugs=False
)
_MUTATING = "mutation" if os.environ.get("MUTANT_UNDER_TEST") else "suite"
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _MUTATING))


# Polars work while a test module is imported (a frame built in a parametrize list) starts
# polars' thread pool in the collecting process. mutmut's fork server collects once and forks
# every mutant from it: each forked child then waits forever for pool threads it does not have.
_POOL_THREAD = re.compile(r"polars-\d+$")
_pool_started_by: list[str] = []


def _polars_pool_running() -> bool:
    tasks = Path(f"/proc/{os.getpid()}/task")
    if not tasks.exists():
        return False
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            continue
    return any(_POOL_THREAD.match(n) for n in names)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    watch = isinstance(collector, pytest.Module) and not _pool_started_by and not _polars_pool_running()
    yield
    if watch and _polars_pool_running():
        _pool_started_by.append(str(collector.path))


def pytest_collection_finish(session: pytest.Session) -> None:
    if _pool_started_by:
        raise pytest.UsageError(
            f"{_pool_started_by[0]} runs polars while it is imported (module-level frames or parametrize values): "
            "build the frames inside the tests (e.g. parametrize with lambdas), or mutants forked after collection deadlock"
        )


@pytest.fixture
def mlops_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLOPS_HOME with its folders; files count as settled at once."""
    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("MLOPS_SETTLE_SECONDS", "0")
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    for var in ("MLOPS_LANDING_DIR", "MLOPS_QUARANTINE_DIR", "MLOPS_STORAGE_DIR", "MLOPS_DATASET_SPEC", "MLOPS_DEPLOYMENT"):
        monkeypatch.delenv(var, raising=False)
    from mlops_assets import settings

    settings.ensure_local_dirs()
    return home


@pytest.fixture
def landing_dir(mlops_home: Path) -> Path:
    return mlops_home / "landing"


@pytest.fixture
def defs(mlops_home: Path) -> dg.Definitions:
    from mlops_assets.definitions import build_definitions

    return build_definitions("local")


@pytest.fixture
def instance(mlops_home: Path):
    from mlops_assets.settings import local_instance_config

    home = mlops_home / "dagster_home"
    with dg.instance_for_test(temp_dir=str(home), overrides=local_instance_config(home)) as inst:
        yield inst
