import dagster as dg

from mlops_assets.core.spec import DatasetSpec, default_spec_path, load_spec


class DatasetSpecResource(dg.ConfigurableResource):
    """The dataset spec (YAML) that names timestamp, group, target and feature columns.
    Defaults to MLOPS_DATASET_SPEC, else the demo spec shipped in the package."""

    path: str = ""

    def load(self) -> DatasetSpec:
        return load_spec(self.path or default_spec_path())
