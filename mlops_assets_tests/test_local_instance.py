"""The local Dagster instance the CLI writes: a run queue that starts one training at a time,
an upgrade of the file an earlier version wrote, and never a change to anyone else's file."""

import dagster as dg
import yaml

from mlops_assets import settings


def first_version_file(home) -> str:
    """dagster.yaml exactly as `write_dagster_yaml` wrote it before the run queue existed."""
    return yaml.safe_dump(
        {
            "event_log_storage": {
                "module": "dagster._core.storage.event_log",
                "class": "ConsolidatedSqliteEventLogStorage",
                "config": {"base_dir": str(home / "history" / "events")},
            },
            "telemetry": {"enabled": False},
        },
        sort_keys=False,
    )


def training_limits(home) -> list[dict]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        return list(instance.run_coordinator.get_run_queue_config().tag_concurrency_limits)


def test_a_new_local_instance_queues_training_runs_one_at_a_time(tmp_path):
    home = tmp_path / "dagster_home"
    path = settings.write_dagster_yaml(home)
    assert "QueuedRunCoordinator" in path.read_text()
    assert training_limits(home) == [{"key": "mlops/training", "value": "true", "limit": 1}]


def test_the_file_an_earlier_version_wrote_is_upgraded(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(first_version_file(home))
    settings.write_dagster_yaml(home)
    assert training_limits(home) == [{"key": "mlops/training", "value": "true", "limit": 1}]
    text = (home / "dagster.yaml").read_text()
    assert str(home / "history" / "events") in text  # the event log stays where it was
    settings.write_dagster_yaml(home)
    assert (home / "dagster.yaml").read_text() == text  # idempotent


def test_a_users_or_productions_file_is_never_touched(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    edited = first_version_file(home).replace("enabled: false", "enabled: true")
    production = "# production\nrun_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    for text in (edited, production, "storage: [not: valid: yaml"):
        (home / "dagster.yaml").write_text(text)
        settings.write_dagster_yaml(home)
        assert (home / "dagster.yaml").read_text() == text


def test_training_job_runs_carry_the_tag_the_queue_limits():
    from mlops_assets.definitions import build_definitions

    defs = build_definitions("local")
    assert defs.resolve_job_def("training_job").run_tags["mlops/training"] == "true"
    assert "mlops/training" not in defs.resolve_job_def("monitoring_job").run_tags
