"""What every training run records about where it came from."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

TRACKED_PACKAGES = (
    "mlops_assets", "dagster", "mlflow", "polars", "pandas", "numpy", "scikit-learn", "xgboost", "keras", "jax",
    "shap", "fairlearn", "pandera",
)


@lru_cache(maxsize=1)
def code_version() -> str:
    """The git commit of the checkout (with `-dirty` when files changed), else the package version."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return f"mlops_assets=={package_version('mlops_assets')}"


# Distributions that install the same module under another name (the CPU-only XGBoost build).
ALTERNATIVES = {"xgboost": ("xgboost", "xgboost-cpu")}


def installed_distribution(name: str) -> tuple[str, str] | None:
    """(distribution name, version) of the installed distribution providing `name`, if any."""
    for candidate in ALTERNATIVES.get(name, (name,)):
        try:
            return candidate, metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return None


def package_version(name: str) -> str:
    found = installed_distribution(name)
    return found[1] if found else "not-installed"


def environment() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        **{f"pkg.{name}": package_version(name) for name in TRACKED_PACKAGES},
    }


def pip_requirements(names: tuple[str, ...]) -> list[str]:
    """`<distribution>==<version>` of each installed one, under the name it is installed as."""
    found = [installed_distribution(name) for name in names]
    return [f"{dist}=={version}" for dist, version in filter(None, found)]
