"""Moving the `champion` alias: promotion after passed checks, rollback, forced override.
Shared by the `champion_model` asset and the CLI; every move is recorded in the history.

Promotion is compare-and-set: a version moves to `champion` only if the champion it was
compared with (tag `compared_champion`, written when it was registered) still is the
champion. Each action reads and moves the alias while holding the registry's champion lock,
so no other move can slip in between the check and the set."""

from __future__ import annotations

from typing import Any

from mlops_assets.core.promotion import BLOCKING_CHECKS, champion_changed, recorded_champion, rollback_target, serving_stack
from mlops_assets.resources.registry import CHAMPION, COMPARED_TAG, ModelRegistry, version_label

REFUSED = "refuse"
EXTERNAL = "external"


class PromotionRefused(RuntimeError):
    """The alias was not moved; the message says why."""


def promote(registry: ModelRegistry, version: str, trigger: str) -> dict[str, Any]:
    """Move `champion` to `version` if its blocking checks passed and the champion it was
    compared with is still the champion. A changed champion is an outcome, not an error: the
    refusal is recorded and returned (action "refuse"); the alias stays where it is."""
    with registry.locked(f"promotion of v{version}"):
        tags = registry.version_tags(version)
        missing = [c for c in BLOCKING_CHECKS if f"check.{c}" not in tags]
        failed = [c for c in BLOCKING_CHECKS if not tags.get(f"check.{c}", "").startswith("pass")]
        current = registry.alias_version(CHAMPION)
        if missing or failed:
            reason = f"blocking checks not passed: {failed}" + (f" (no verdict for {missing})" if missing else "")
            registry.record(REFUSED, version, current, trigger, reason)
            raise PromotionRefused(f"v{version} not promoted: {reason}")
        verdicts = [{"check": c, "passed": True} for c in BLOCKING_CHECKS]
        if current == version:
            return _already_champion(registry, version, trigger, verdicts)
        changed = _champion_changed(tags, current)
        if changed:
            return registry.record(REFUSED, version, current, trigger, changed)
        registry.set_alias(CHAMPION, version)
        return registry.record("promote", version, current, trigger, "all blocking checks passed", verdicts)


def _champion_changed(tags: dict[str, str], current: str | None) -> str | None:
    """Why the version may not replace `current`, from its `compared_champion` tag; None if it may."""
    if COMPARED_TAG not in tags:
        return "no record of the champion this version was compared with: retrain, or promote it by hand with --force"
    return champion_changed(None if tags[COMPARED_TAG] == "none" else tags[COMPARED_TAG], current)


def _already_champion(registry: ModelRegistry, version: str, trigger: str, verdicts: list[dict]) -> dict[str, Any]:
    served = serving_stack(registry.history())
    if served and served[-1] == version:
        return {"action": "unchanged", "version": version, "previous_champion": version, "reason": "already champion"}
    # The alias moved but the process died before the history entry: re-execution completes it.
    before = served[-1] if served else None
    return registry.record("promote", version, before, trigger, "all blocking checks passed (history completed on re-execution)", verdicts)


def rollback(registry: ModelRegistry, reason: str, trigger: str) -> dict[str, Any]:
    if not reason.strip():
        raise PromotionRefused("a rollback needs a reason")
    with registry.locked("rollback"):
        current, target = rollback_target(registry.history())
        if registry.alias_version(CHAMPION) != current:
            raise PromotionRefused(f"the history says v{current} serves but alias {CHAMPION} points elsewhere: fix by hand")
        registry.set_alias(CHAMPION, target)
        return registry.record("rollback", target, current, trigger, reason)


def force_promote(registry: ModelRegistry, version: str, reason: str, trigger: str) -> dict[str, Any]:
    if not version or not reason.strip():
        raise PromotionRefused("a forced promotion needs --version and --reason")
    registry.client.get_model_version(registry.name, version)  # raises if it does not exist
    with registry.locked(f"forced promotion of v{version}"):
        previous = registry.alias_version(CHAMPION)
        registry.set_alias(CHAMPION, version)
        return registry.record("force_promote", version, previous, trigger, reason)


def record_external_move(registry: ModelRegistry, trigger: str = "outside the platform (MLflow UI or API)") -> dict[str, Any] | None:
    """If `champion` is not where the history's last move left it, it was moved outside the
    platform (bypassing the gate): record that as an "external" entry and return it; None when
    alias and history agree. Under the champion lock, so a move of ours in progress (alias set,
    entry not yet written) is never mistaken for one."""
    with registry.locked("looking for a champion moved outside the platform"):
        history = registry.history()
        expected, actual = recorded_champion(history), registry.alias_version(CHAMPION)
        if actual == expected:
            return None
        reason = f"alias {CHAMPION} moved outside the platform: {version_label(expected)} -> {version_label(actual)} (no gate, no reason given)"
        return registry.record(EXTERNAL, actual, expected, trigger, reason)
