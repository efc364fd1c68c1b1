"""Moving the `champion` alias (promote, rollback, forced promotion) on a real MLflow registry
(a SQLite store, as the platform's default), one registered model per test. Versions are created
straight in MLflow with the verdict and compare-and-set tags `registered_model` writes; no
model is trained, so these run in a tenth of a second each."""

import atexit
import functools
import os
import shutil
import tempfile
import uuid
from importlib.metadata import version as package_version
from pathlib import Path

import pytest

from mlops_assets.core.promotion import BLOCKING_CHECKS
from mlops_assets.locks import holder, lock_path
from mlops_assets.registry_actions import PromotionRefused, force_promote, promote, record_external_move, rollback
from mlops_assets.resources.registry import CHAMPION, CHAMPION_LOCK, COMPARED_TAG
from mlops_assets.resources.tracking import MlflowTracking

ALL_PASS = {f"check.{c}": f"pass: {c} ok" for c in BLOCKING_CHECKS}
PASSED_VERDICTS = {c: "pass" for c in BLOCKING_CHECKS}


@functools.cache
def empty_store() -> Path:
    """An MLflow SQLite store with its tables, made once per machine and MLflow version
    (creating the tables takes seconds, copying the file does not)."""
    path = Path(tempfile.gettempdir()) / f"mlops-assets-empty-mlflow-{package_version('mlflow')}.db"
    if not path.exists():
        folder = Path(tempfile.mkdtemp(prefix="mlflow-store-"))
        MlflowTracking(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_root=str(folder)).registry().history()
        os.replace(folder / "mlflow.db", path)
        shutil.rmtree(folder, ignore_errors=True)
    return path


@functools.cache
def shared_store() -> MlflowTracking:
    """One store per process for these tests, each on a registered model of its own (opening a
    store costs a third of a second: more than most of these tests)."""
    folder = tempfile.TemporaryDirectory(prefix="mlflow-registry-tests-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    atexit.register(folder.cleanup)  # not run by processes forked from this one: they _exit
    shutil.copy(empty_store(), Path(folder.name) / "mlflow.db")
    return MlflowTracking(tracking_uri=f"sqlite:///{folder.name}/mlflow.db", artifact_root=f"{folder.name}/mlartifacts")


OPENED_IN = {}  # store URI -> the process that opened its connections


def open_store(tracking: MlflowTracking) -> MlflowTracking:
    """In a process forked from the one that opened the store (mutation testing forks one per
    mutant), drop the inherited SQLite connections unclosed, as SQLAlchemy advises after a
    fork: the child opens its own, the parent's stay the parent's."""
    client = tracking.client()
    if OPENED_IN.setdefault(tracking.tracking_uri, os.getpid()) != os.getpid():
        for store in (client._tracking_client.store, client._get_registry_client().store):
            store.engine.dispose(close=False)
        OPENED_IN[tracking.tracking_uri] = os.getpid()
    return tracking


@pytest.fixture
def tracking() -> MlflowTracking:
    return open_store(shared_store())


@pytest.fixture
def registry(tracking, mlops_home):
    """A registered model of its own in the module's store (the champion lock is under this
    test's MLOPS_HOME)."""
    registry = tracking.model_copy(update={"registered_model": f"forecaster_{uuid.uuid4().hex}"}).registry()
    registry.ensure_model()
    return registry


def register(registry, tags: dict[str, str], compared: str | None = "none") -> str:
    """A new version with these tags, evaluated against champion `compared` (None: no record)."""
    if compared is not None:
        tags = {**tags, COMPARED_TAG: compared}
    created = registry.client.create_model_version(registry.name, source=str(Path(tempfile.gettempdir()) / "no-model-logged"), tags=tags)
    return str(created.version)


def entries(registry) -> list[tuple]:
    return [(e["action"], e["version"], e["previous_champion"], e["trigger"], e["reason"]) for e in registry.history()]


def serve(registry) -> str:
    """A new checked version serving as champion, as a past promotion left it: alias moved,
    history entry written (the two writes `promote` makes)."""
    current = registry.alias_version(CHAMPION)
    version = register(registry, ALL_PASS, compared=current or "none")
    registry.set_alias(CHAMPION, version)
    registry.record("promote", version, current, "earlier run", "all blocking checks passed")
    return version


def test_the_first_checked_version_becomes_champion(registry):
    version = register(registry, ALL_PASS)
    entry = promote(registry, version, "run abc")
    assert registry.alias_version(CHAMPION) == version
    assert (entry["action"], entry["version"], entry["previous_champion"], entry["reason"]) == ("promote", "1", None, "all blocking checks passed")
    assert entry["verdicts"] == PASSED_VERDICTS
    assert entries(registry) == [("promote", "1", None, "run abc", "all blocking checks passed")]
    assert registry.version_tags(version)["promotion.000001"] == "promote by run abc: all blocking checks passed"
    assert holder(lock_path(CHAMPION_LOCK))["purpose"] == "promotion of v1"  # what a process waiting for the lock is told


def test_a_checked_version_compared_with_the_serving_champion_replaces_it(registry):
    champion = serve(registry)
    challenger = register(registry, ALL_PASS, compared=champion)
    entry = promote(registry, challenger, "run def")
    assert registry.alias_version(CHAMPION) == challenger == "2"
    assert entries(registry)[-1] == ("promote", "2", "1", "run def", "all blocking checks passed")
    assert entry["verdicts"] == PASSED_VERDICTS


def test_an_unchecked_version_is_refused_and_the_alias_stays(registry):
    champion = serve(registry)
    unchecked = register(registry, {}, compared=champion)  # compare-and-set alone would let it through
    with pytest.raises(PromotionRefused) as refused:
        promote(registry, unchecked, "run ghi")
    checks = list(BLOCKING_CHECKS)
    reason = f"blocking checks not passed: {checks} (no verdict for {checks})"
    assert str(refused.value) == f"v2 not promoted: {reason}"
    assert registry.alias_version(CHAMPION) == champion
    assert entries(registry)[-1] == ("refuse", "2", "1", "run ghi", reason)


@pytest.mark.parametrize(
    "tags, reason",
    [
        ({**ALL_PASS, "check.bias_within_threshold": "FAIL: group E gap 0.31"}, "blocking checks not passed: ['bias_within_threshold']"),
        (
            {k: v for k, v in ALL_PASS.items() if k != "check.serving_smoke_test"},
            "blocking checks not passed: ['serving_smoke_test'] (no verdict for ['serving_smoke_test'])",
        ),
    ],
)
def test_a_failed_or_missing_verdict_refuses_the_first_model_too(registry, tags, reason):
    version = register(registry, tags)
    with pytest.raises(PromotionRefused, match=r"^v1 not promoted: "):
        promote(registry, version, "run")
    assert registry.alias_version(CHAMPION) is None
    assert entries(registry) == [("refuse", "1", None, "run", reason)]


def test_a_version_compared_with_another_champion_is_refused_as_an_outcome(registry):
    first = serve(registry)
    stale = register(registry, ALL_PASS, compared="none")  # evaluated before v1 was champion
    entry = promote(registry, stale, "run 42")
    refusal = ("refuse", "2", first, "run 42", "champion changed from none to v1 during evaluation")
    assert (entry["action"], entry["version"], entry["previous_champion"], entry["trigger"], entry["reason"]) == refusal
    assert registry.alias_version(CHAMPION) == first and entries(registry)[-1] == refusal


def test_a_version_without_a_compare_and_set_record_is_refused(registry):
    first = serve(registry)
    unrecorded = register(registry, ALL_PASS, compared=None)
    entry = promote(registry, unrecorded, "run")
    reason = "no record of the champion this version was compared with: retrain, or promote it by hand with --force"
    assert (entry["action"], entry["version"], entry["reason"]) == ("refuse", "2", reason)
    assert registry.alias_version(CHAMPION) == first


def test_promoting_the_champion_again_changes_nothing(registry):
    champion = serve(registry)
    again = promote(registry, champion, "re-execution")
    assert again == {"action": "unchanged", "version": "1", "previous_champion": "1", "reason": "already champion"}
    assert len(registry.history()) == 1


def test_a_move_whose_history_entry_was_lost_is_completed_on_re_execution(registry):
    first = serve(registry)
    second = register(registry, ALL_PASS, compared=first)
    registry.set_alias(CHAMPION, second)  # the process died right after moving the alias
    entry = promote(registry, second, "re-execution")
    reason = "all blocking checks passed (history completed on re-execution)"
    assert entries(registry)[-1] == ("promote", "2", "1", "re-execution", reason)
    assert entry["verdicts"] == PASSED_VERDICTS


def test_a_first_move_whose_history_entry_was_lost_is_completed_too(registry):
    version = register(registry, ALL_PASS)
    registry.set_alias(CHAMPION, version)  # died after the very first move
    promote(registry, version, "re-execution")
    assert entries(registry) == [("promote", "1", None, "re-execution", "all blocking checks passed (history completed on re-execution)")]


def test_rollback_returns_to_the_version_that_served_before(registry):
    first = serve(registry)
    serve(registry)
    entry = rollback(registry, "v2 misses the evening peak", "cli")
    assert registry.alias_version(CHAMPION) == first
    assert entries(registry)[-1] == ("rollback", "1", "2", "cli", "v2 misses the evening peak")
    assert entry["action"] == "rollback"
    assert holder(lock_path(CHAMPION_LOCK))["purpose"] == "rollback"  # what a process waiting for the lock is told


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_rollback_needs_a_reason(registry, reason):
    serve(registry)
    serve(registry)
    with pytest.raises(PromotionRefused, match="^a rollback needs a reason$"):
        rollback(registry, reason, "cli")
    assert registry.alias_version(CHAMPION) == "2"


def test_a_rollback_refuses_when_the_alias_disagrees_with_the_history(registry):
    serve(registry)
    serve(registry)
    registry.set_alias(CHAMPION, register(registry, {}))  # moved by hand, outside the platform
    with pytest.raises(PromotionRefused) as refused:
        rollback(registry, "bad", "cli")
    assert str(refused.value) == "the history says v2 serves but alias champion points elsewhere: fix by hand"
    assert registry.alias_version(CHAMPION) == "3"


def test_a_rollback_without_an_earlier_champion_is_refused(registry):
    serve(registry)
    with pytest.raises(ValueError, match="^nothing to roll back to"):
        rollback(registry, "bad", "cli")
    assert registry.alias_version(CHAMPION) == "1"


def test_a_forced_promotion_ignores_the_checks_and_is_recorded(registry):
    first = serve(registry)
    failed = register(registry, {**ALL_PASS, "check.no_regression_vs_champion": "FAIL: worse"}, compared="none")
    entry = force_promote(registry, failed, "hotfix for the holiday peak", "cli")
    assert registry.alias_version(CHAMPION) == failed
    assert entries(registry)[-1] == ("force_promote", "2", first, "cli", "hotfix for the holiday peak")
    assert entry["action"] == "force_promote"
    assert holder(lock_path(CHAMPION_LOCK))["purpose"] == "forced promotion of v2"


@pytest.mark.parametrize("version, reason", [("", "hotfix"), ("2", ""), ("2", "  ")])
def test_a_forced_promotion_needs_a_version_and_a_reason(registry, version, reason):
    serve(registry)
    register(registry, {})
    with pytest.raises(PromotionRefused, match="^a forced promotion needs --version and --reason$"):
        force_promote(registry, version, reason, "cli")
    assert registry.alias_version(CHAMPION) == "1" and len(registry.history()) == 1


def test_a_forced_promotion_of_a_missing_version_fails_before_moving_anything(registry):
    from mlflow.exceptions import MlflowException

    serve(registry)
    with pytest.raises(MlflowException):
        force_promote(registry, "7", "hotfix", "cli")
    assert registry.alias_version(CHAMPION) == "1" and len(registry.history()) == 1


def test_a_champion_moved_outside_the_platform_is_recorded_once_as_external(registry):
    first = serve(registry)
    second = serve(registry)
    assert record_external_move(registry) is None  # alias and history agree
    registry.set_alias(CHAMPION, first)  # someone in the MLflow UI, no gate, no reason
    entry = record_external_move(registry)
    reason = "alias champion moved outside the platform: v2 -> v1 (no gate, no reason given)"
    assert entries(registry)[-1] == ("external", first, second, "outside the platform (MLflow UI or API)", reason)
    assert (entry["action"], entry["version"], entry["previous_champion"]) == ("external", first, second)
    assert record_external_move(registry) is None  # recorded: the next look finds nothing new
    assert holder(lock_path(CHAMPION_LOCK))["purpose"] == "looking for a champion moved outside the platform"

    rolled = rollback(registry, "the external move was a mistake", "cli")  # back to what served before it
    assert (rolled["version"], rolled["previous_champion"]) == (second, first)


def test_a_removed_champion_alias_is_recorded_as_external_with_no_version(registry):
    served = serve(registry)
    registry.client.delete_registered_model_alias(registry.name, CHAMPION)
    entry = record_external_move(registry)
    assert (entry["action"], entry["version"], entry["previous_champion"]) == ("external", None, served)
    assert entry["reason"] == "alias champion moved outside the platform: v1 -> none (no gate, no reason given)"
    assert record_external_move(registry) is None
