"""The serving stack after any sequence of registry actions (registry_actions: promote, rollback,
force_promote) equals the replay of the promotion history, and the `champion` alias points to
its top; over a real MLflow registry (SQLite in a temporary folder), a fresh registered model
per example, with few examples (each action is a handful of MLflow calls).

What should serve is tracked here as a list: a promotion of a version whose blocking checks
passed and whose evaluation compared it with the serving champion pushes it; a forced
promotion pushes any version; a rollback returns to the version that served before. A refused
promotion (a failed check, a champion that changed since the evaluation) and a rollback with
nothing to return to change nothing."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mlops_assets.core.promotion import BLOCKING_CHECKS, serving_stack
from mlops_assets.registry_actions import PromotionRefused, force_promote, promote, rollback
from mlops_assets.resources.registry import CHAMPION, COMPARED_TAG, ModelRegistry

PASSING = ("1", "2", "3")
FAILING = "4"  # its bias check failed
NAMES = itertools.count(1)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("promote"), st.sampled_from((*PASSING, FAILING))),
        st.tuples(st.just("promote_stale"), st.sampled_from(PASSING)),
        st.tuples(st.just("force"), st.sampled_from((*PASSING, FAILING))),
        st.tuples(st.just("rollback"), st.none()),
    ),
    min_size=1,
    max_size=8,
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One MLflow store for the module (creating its tables takes seconds); the champion lock
    lives under a MLOPS_HOME of its own."""
    from mlflow import MlflowClient

    home = tmp_path_factory.mktemp("serving_stack")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home / "mlops"))
        uri = f"sqlite:///{home / 'mlflow.db'}"
        yield MlflowClient(tracking_uri=uri, registry_uri=uri)


def fresh_registry(client) -> ModelRegistry:
    """A registered model with versions 1-3 whose blocking checks passed and version 4 whose bias check failed."""
    registry = ModelRegistry(client, f"stack_{next(NAMES)}")
    registry.ensure_model()
    for version in (*PASSING, FAILING):
        verdicts = {f"check.{c}": "pass: ok" for c in BLOCKING_CHECKS}
        if version == FAILING:
            verdicts["check.bias_within_threshold"] = "FAIL: one group's error is 3x the others'"
        client.create_model_version(registry.name, source="/nonexistent/model", tags=verdicts)
    return registry


def act(registry: ModelRegistry, served: list[str], action: str, version: str | None) -> None:
    """Run one action on the registry and the same action on `served` (what should serve)."""
    current = served[-1] if served else None
    if action == "rollback":
        if len(served) < 2:
            with pytest.raises(ValueError, match="nothing to roll back to|no champion"):
                rollback(registry, "property test", "cli")
            return
        rollback(registry, "property test", "cli")
        served.pop()
    elif action == "force":
        force_promote(registry, version, "property test", "cli")
        if version != current:
            served.append(version)
    else:
        # The evaluation compared the version with the serving champion, or (stale) with another one.
        compared = current if action == "promote" else next(v for v in ("none", *PASSING) if v != (current or "none"))
        registry.tag_version(version, {COMPARED_TAG: compared or "none"})
        if version == FAILING:
            with pytest.raises(PromotionRefused, match="bias_within_threshold"):
                promote(registry, version, "cli")
            return
        entry = promote(registry, version, "cli")
        if version == current:
            assert entry["action"] == "unchanged"
        elif action == "promote":
            served.append(version)
        else:
            assert entry["action"] == "refuse" and "champion changed" in entry["reason"]


@settings(max_examples=max(6, settings.default.max_examples // 5))
@given(operations)
@example([("promote", "1"), ("promote", "2"), ("force", "4"), ("promote", "2"), *[("rollback", None)] * 3, ("promote", "3"), ("promote_stale", "1")])
def test_the_serving_stack_equals_the_replay_of_the_history_after_any_actions(client, operations):
    registry = fresh_registry(client)
    served: list[str] = []
    for action, version in operations:
        act(registry, served, action, version)
        assert serving_stack(registry.history()) == served, (action, version)
        assert registry.alias_version(CHAMPION) == (served[-1] if served else None), (action, version)
