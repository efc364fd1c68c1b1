"""The MLflow model registry as this platform uses it: aliases `champion` and `challenger`,
verdict tags on each version, and a promotion history kept as registered-model tags
(`history.000001`, ...), so the CLI, the assets and the server all read one source. The same
history is readable in MLflow as the table artifact `promotion_history.json` of the run
`promotion-history-<model>` in the experiment, rewritten after each entry (a view: an entry is
recorded even when writing the table fails).

Every change of the `champion` alias and every history entry happens under one lock
(`MLOPS_HOME/locks/champion.lock`, see mlops_assets/locks.py), so a check-then-set (compare-
and-set promotion) cannot interleave with another process's move. It protects processes on
this machine: the CLI, in-process runs and every run the local daemon or a deployment with
the DefaultRunLauncher starts (all on the Dagster host). MLflow itself has no conditional
alias update, so moves made from another machine straight against the tracking server are
not covered; production makes its moves through Dagster runs on its one host."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

CHAMPION, CHALLENGER = "champion", "challenger"
# Version tag: the champion version `model_evaluation` compared this version with ("none" if none).
COMPARED_TAG = "compared_champion"
CHAMPION_LOCK = "champion"
HISTORY_PREFIX = "history."
MAX_TAG_CHARS = 4800


def version_label(version: str | None) -> str:
    """`v3`, or `none` where there is no version (the previous champion of the first one)."""
    return f"v{version}" if version else "none"


# The promotion history as a table artifact (`mlflow.load_table` reads it) of one run per
# registered model in the experiment, rewritten whole after each entry.
HISTORY_TABLE = "promotion_history.json"
HISTORY_COLUMNS = ("number", "at", "action", "version", "previous_champion", "trigger", "reason", "verdicts")
HISTORY_ROLE = "promotion_history"


class ModelRegistry:
    def __init__(self, client, name: str, experiment_id: Callable[[], str] | None = None):
        """`experiment_id`: the experiment that holds the history's table run (none: no table)."""
        self.client = client
        self.name = name
        self.experiment_id = experiment_id

    def ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(self.name, description="Hourly load forecaster promoted by mlops_assets.")

    def register(self, model_uri: str, tags: dict[str, str]) -> str:
        import mlflow

        self.ensure_model()
        # mlflow.register_model resolves a logged model's `models:/m-...` URI for any store
        # (a tracking server needs the model id passed along, which create_model_version does not do).
        # register_model prints "already exists. Creating a new version..." to stderr itself.
        with contextlib.redirect_stderr(io.StringIO()):
            version = mlflow.register_model(model_uri, self.name, tags={k: str(v)[:MAX_TAG_CHARS] for k, v in tags.items()})
        return str(version.version)

    def alias_version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException:
            return None

    def locked(self, purpose: str = ""):
        """The champion lock (re-entrant in one process): hold it around a check-then-set."""
        from mlops_assets.locks import hold

        return hold(CHAMPION_LOCK, purpose or f"promotion history of {self.name}")

    def set_alias(self, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(self.name, alias, version)

    def tag_version(self, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, version, key, str(value)[:MAX_TAG_CHARS])

    def version_tags(self, version: str) -> dict[str, str]:
        return dict(self.client.get_model_version(self.name, version).tags)

    def model_uri(self, version: str) -> str:
        return f"models:/{self.name}/{version}"

    def history(self) -> list[dict[str, Any]]:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.name).tags
        except MlflowException:
            return []
        return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(HISTORY_PREFIX))]

    def record(self, action: str, version: str | None, previous: str | None, trigger: str, reason: str, verdicts: list[dict] | None = None) -> dict[str, Any]:
        """Append one entry to the promotion history (and tag the version with it); numbered
        under the champion lock, so two processes never write the same entry number."""
        with self.locked():
            return self._record(action, version, previous, trigger, reason, verdicts)

    def _record(self, action: str, version: str | None, previous: str | None, trigger: str, reason: str, verdicts: list[dict] | None) -> dict[str, Any]:
        self.ensure_model()
        entry = {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "action": action,
            "version": version,
            "previous_champion": previous,
            "trigger": trigger,
            "reason": reason[:1500],
            "verdicts": {v["check"]: ("pass" if v["passed"] else "FAIL") for v in verdicts or []},
        }
        number = len(self.history()) + 1
        self.client.set_registered_model_tag(self.name, f"{HISTORY_PREFIX}{number:06d}", json.dumps(entry)[:MAX_TAG_CHARS])
        if version:
            self.tag_version(version, {f"promotion.{number:06d}": f"{action} by {trigger}: {reason}"})
        try:
            self.log_history_table()
        except Exception as error:  # noqa: BLE001 - the entry is recorded (tags); the table is a view of it
            logging.getLogger(__name__).warning(f"promotion history of {self.name}: entry {number} recorded, its MLflow table not updated: {error}")
        return entry

    def history_run_id(self) -> str | None:
        """The run holding the history table (created on first use; under the champion lock
        when called from `record`); None without an experiment."""
        if self.experiment_id is None:
            return None
        experiment = self.experiment_id()
        runs = self.client.search_runs(
            [experiment], filter_string=f"tags.`mlops.run_role` = '{HISTORY_ROLE}' AND tags.`registered_model` = '{self.name}'", max_results=1,
        )
        if runs:
            return runs[0].info.run_id
        run = self.client.create_run(
            experiment, run_name=f"promotion-history-{self.name}",
            tags={"mlops.run_role": HISTORY_ROLE, "registered_model": self.name,
                  "mlflow.note.content": f"Promotion history of {self.name} (table `{HISTORY_TABLE}`), rewritten after each entry."},
        )
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def log_history_table(self) -> str | None:
        """Write the whole history as the table artifact `promotion_history.json` (what
        `mlflow.log_table` writes: pandas JSON `split`, marked as a table on the run), one row per
        entry; returns the run id (None without an experiment)."""
        import tempfile
        from pathlib import Path

        import pandas as pd

        run_id = self.history_run_id()
        if run_id is None:
            return None
        rows = [
            {**{k: e.get(k) for k in HISTORY_COLUMNS[1:-1]}, "number": n, "verdicts": json.dumps(e.get("verdicts") or {})}
            for n, e in enumerate(self.history(), start=1)
        ]
        frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / HISTORY_TABLE
            frame.to_json(path, orient="split", index=False, date_format="iso")
            self.client.log_artifact(run_id, str(path))
        logged = json.loads(self.client.get_run(run_id).data.tags.get("mlflow.loggedArtifacts", "[]"))
        if {"path": HISTORY_TABLE, "type": "table"} not in logged:
            self.client.set_tag(run_id, "mlflow.loggedArtifacts", json.dumps([*logged, {"path": HISTORY_TABLE, "type": "table"}]))
        return run_id
