"""A stand-in for training_job in the lock tests: tagged `mlops/training=true` like it, with
one asset that waits until the file GATE_FILE exists, so a test decides how long it trains.
`python -m mlops_assets_tests.slow_training` runs it as the CLI runs training_job
(`runner.run_job` on the instance under MLOPS_HOME) and prints what happened."""

import os
import time
from pathlib import Path

import dagster as dg

from mlops_assets.settings import TRAINING_TAG


@dg.asset
def slow_model() -> int:
    Path(os.environ["STARTED_FILE"]).write_text(str(os.getpid()))
    while not Path(os.environ["GATE_FILE"]).exists():
        time.sleep(0.05)
    return 1


def definitions() -> dg.Definitions:
    storage = Path(os.environ["MLOPS_HOME"]) / "storage"
    return dg.Definitions(
        assets=[slow_model],
        jobs=[dg.define_asset_job("slow_training", selection=[slow_model], tags={TRAINING_TAG: "true"})],
        resources={"io_manager": dg.FilesystemIOManager(base_dir=str(storage))},
    )


if __name__ == "__main__":
    from mlops_assets.runner import TrainingInProgress, local_instance, run_job

    try:
        result = run_job(definitions(), "slow_training", local_instance())
        print("trained" if result.success else "failed", flush=True)
    except TrainingInProgress as busy:
        print(f"not trained: {busy}", flush=True)
