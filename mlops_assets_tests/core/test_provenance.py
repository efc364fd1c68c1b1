"""What a training run records about its environment: packages by the name they are installed
under (the CPU-only XGBoost build is the distribution `xgboost-cpu`, module `xgboost`)."""

from importlib import metadata

from mlops_assets.core.provenance import environment, package_version, pip_requirements


def installed_xgboost() -> tuple[str, str]:
    for name in ("xgboost", "xgboost-cpu"):
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    raise AssertionError("no xgboost distribution installed")


def test_xgboost_is_found_under_the_distribution_that_provides_it():
    name, version = installed_xgboost()
    assert package_version("xgboost") == version
    assert environment()["pkg.xgboost"] == version
    assert pip_requirements(("xgboost", "mlflow")) == [f"{name}=={version}", f"mlflow=={metadata.version('mlflow')}"]


def test_a_package_that_is_not_installed_is_said_so_and_left_out_of_requirements():
    assert package_version("no-such-distribution-here") == "not-installed"
    assert pip_requirements(("no-such-distribution-here",)) == []
