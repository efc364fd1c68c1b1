"""`runner.run_job`: the way the CLI and the demo run a whole job in one process."""

import gc
import os
import signal
import subprocess
import sys
import time
import weakref

import dagster as dg
import pytest

from mlops_assets.runner import run_job


class Payload:
    """A step output we can watch: weak references tell whether anything still holds it."""

    def __init__(self, values: list[int]):
        self.values = values


alive: list[weakref.ref] = []


@dg.asset
def upstream() -> Payload:
    payload = Payload(list(range(1000)))
    alive.append(weakref.ref(payload))
    return payload


@dg.asset
def downstream(upstream: Payload) -> int:
    return sum(upstream.values)


def _defs(tmp_path) -> dg.Definitions:
    return dg.Definitions(
        assets=[upstream, downstream],
        jobs=[dg.define_asset_job("both", selection=[upstream, downstream])],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage"))},
    )


def test_outputs_are_released_during_the_run_and_read_back_from_storage(tmp_path):
    alive.clear()
    defs = _defs(tmp_path)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_job(defs, "both", instance)
        gc.collect()

        assert result.success
        assert len(alive) == 1 and alive[0]() is None, "the run still holds the upstream output in memory"
        stored = result.output_for_node("upstream")
        assert isinstance(stored, Payload) and stored.values == list(range(1000))
        assert result.output_for_node("downstream") == sum(range(1000))
        assert {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()} == {"upstream", "downstream"}


def test_asking_for_an_output_that_was_not_materialized_names_it(tmp_path):
    @dg.asset(name="upstream")
    def failing_upstream() -> Payload:
        raise RuntimeError("no data today")

    defs = dg.Definitions(
        assets=[failing_upstream, downstream],
        jobs=[dg.define_asset_job("both", selection=["upstream", "downstream"])],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "storage"))},
    )
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        result = run_job(defs, "both", instance)

        assert not result.success
        try:
            result.output_for_node("downstream")
        except dg.DagsterInvariantViolationError as error:
            assert "'downstream' did not materialize output 'result'" in str(error)
        else:
            raise AssertionError("an output that was never stored was returned")


def _training_process(home, gate, started) -> subprocess.Popen:
    env = {
        **os.environ, "MLOPS_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
        "GATE_FILE": str(gate), "STARTED_FILE": str(started),
    }
    return subprocess.Popen([sys.executable, "-m", "mlops_assets_tests.slow_training"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_a_second_process_does_not_train_while_one_trains_and_a_killed_one_leaves_no_lock(tmp_path, monkeypatch):
    """Two processes run a training job as the CLI does: the second does not train and says
    who does; after the first is killed (SIGKILL: no cleanup) the next one trains."""
    import dagster as dg

    from mlops_assets.locks import taken

    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    first = _training_process(home, tmp_path / "gate", tmp_path / "first_started")
    _wait_for(tmp_path / "first_started", first)
    assert taken("training")

    second = _training_process(home, tmp_path / "gate", tmp_path / "second_started")
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.startswith("not trained: a training is already running") and f"process {first.pid} on" in out
    assert not (tmp_path / "second_started").exists()

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not taken("training")
    with dg.DagsterInstance.from_config(str(home / "dagster_home")) as instance:
        [killed] = instance.get_runs(filters=dg.RunsFilter(job_name="slow_training"))
        assert killed.status == dg.DagsterRunStatus.STARTED  # a killed in-process run says so forever

    (tmp_path / "gate").touch()
    third = _training_process(home, tmp_path / "gate", tmp_path / "third_started")
    out, err = third.communicate(timeout=120)
    assert out.strip() == "trained", out + err


def test_a_training_run_started_elsewhere_in_the_instance_stops_an_in_process_training(tmp_path, monkeypatch):
    """A training_job run the daemon or the UI started holds no lock of ours: the instance says it runs."""
    import dagster as dg

    from mlops_assets.runner import TrainingInProgress
    from mlops_assets_tests import slow_training

    home = tmp_path / "mlops"
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("GATE_FILE", str(tmp_path / "gate"))
    monkeypatch.setenv("STARTED_FILE", str(tmp_path / "started"))
    (tmp_path / "gate").touch()
    defs = slow_training.definitions()
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        job = defs.resolve_job_def("slow_training")
        elsewhere = instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.STARTED, tags=job.run_tags)
        with pytest.raises(TrainingInProgress, match=f"a training is already started: run {elsewhere.run_id[:8]}"):
            run_job(defs, "slow_training", instance)
        assert not (tmp_path / "started").exists()
        instance.report_run_canceled(elsewhere)
        assert run_job(defs, "slow_training", instance).success
