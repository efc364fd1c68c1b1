"""`runner.run_job`: the way the CLI and the demo run a whole job in one process."""

import gc
import weakref

import dagster as dg

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
