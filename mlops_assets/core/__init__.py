"""Pure data and ML logic over polars frames and numpy arrays. Nothing here imports dagster."""
