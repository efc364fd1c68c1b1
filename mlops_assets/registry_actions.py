"""Moving the `champion` alias: promotion after passed checks, rollback, forced override.
Shared by the `champion_model` asset and the CLI; every move is recorded in the history."""

from __future__ import annotations

from typing import Any

from mlops_assets.core.promotion import BLOCKING_CHECKS, rollback_target, serving_stack
from mlops_assets.resources.registry import CHAMPION, ModelRegistry


class PromotionRefused(RuntimeError):
    """The alias was not moved; the message says why."""


def promote(registry: ModelRegistry, version: str, trigger: str) -> dict[str, Any]:
    tags = registry.version_tags(version)
    missing = [c for c in BLOCKING_CHECKS if f"check.{c}" not in tags]
    failed = [c for c in BLOCKING_CHECKS if not tags.get(f"check.{c}", "").startswith("pass")]
    if missing or failed:
        reason = f"blocking checks not passed: {failed}" + (f" (no verdict for {missing})" if missing else "")
        registry.record("refuse", version, registry.alias_version(CHAMPION), trigger, reason)
        raise PromotionRefused(f"v{version} not promoted: {reason}")
    previous = registry.alias_version(CHAMPION)
    verdicts = [{"check": c, "passed": True} for c in BLOCKING_CHECKS]
    if previous == version:
        served = serving_stack(registry.history())
        if served and served[-1] == version:
            return {"action": "unchanged", "version": version, "previous_champion": previous, "reason": "already champion"}
        # The alias moved but the process died before the history entry: re-execution completes it.
        before = served[-1] if served else None
        return registry.record("promote", version, before, trigger, "all blocking checks passed (history completed on re-execution)", verdicts)
    registry.set_alias(CHAMPION, version)
    return registry.record("promote", version, previous, trigger, "all blocking checks passed", verdicts)


def rollback(registry: ModelRegistry, reason: str, trigger: str) -> dict[str, Any]:
    if not reason.strip():
        raise PromotionRefused("a rollback needs a reason")
    current, target = rollback_target(registry.history())
    if registry.alias_version(CHAMPION) != current:
        raise PromotionRefused(f"the history says v{current} serves but alias {CHAMPION} points elsewhere: fix by hand")
    registry.set_alias(CHAMPION, target)
    return registry.record("rollback", target, current, trigger, reason)


def force_promote(registry: ModelRegistry, version: str, reason: str, trigger: str) -> dict[str, Any]:
    if not version or not reason.strip():
        raise PromotionRefused("a forced promotion needs --version and --reason")
    registry.client.get_model_version(registry.name, version)  # raises if it does not exist
    previous = registry.alias_version(CHAMPION)
    registry.set_alias(CHAMPION, version)
    return registry.record("force_promote", version, previous, trigger, reason)
