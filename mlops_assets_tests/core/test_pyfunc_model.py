"""The pyfunc class every candidate is logged as."""

import pickle
import subprocess
import sys


def test_importing_the_module_does_not_import_mlflow():
    probe = "import sys, mlops_assets.core.pyfunc_model; print('mlflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_model_class_is_an_mlflow_python_model_pickled_by_reference():
    import cloudpickle
    import mlflow.pyfunc

    from mlops_assets.core import pyfunc_model
    from mlops_assets.core.pyfunc_model import ForecastModel

    assert issubclass(ForecastModel, mlflow.pyfunc.PythonModel)
    assert pyfunc_model.ForecastModel is ForecastModel  # built once
    # MLflow saves the python_model with cloudpickle: by reference, it holds no code, and a
    # model logged by an earlier version of the class still resolves to the current one.
    pickled = cloudpickle.dumps(ForecastModel())
    assert b"load_context" not in pickled and b"mlops_assets.core.pyfunc_model" in pickled
    assert type(pickle.loads(pickled)) is ForecastModel
