import dagster as dg

from mlops_assets.defs.partitions import batches

ingestion_job = dg.define_asset_job(
    "ingestion_job",
    selection=dg.AssetSelection.groups("ingestion"),
    partitions_def=batches,
    description="Parse, validate and clean one landed batch (one `batches` partition).",
)

preparation_job = dg.define_asset_job(
    "preparation_job",
    selection=dg.AssetSelection.groups("preparation"),
    description="Merge clean batches into the history, build features, split in time, profile.",
)

training_job = dg.define_asset_job(
    "training_job",
    selection=dg.AssetSelection.groups("preparation", "training", "fairness", "explainability", "registry"),
    description="Retrain from the latest clean data: preparation, candidates, fairness, SHAP, registry and promotion.",
)

rollback_job = dg.define_asset_job(
    "rollback_job",
    selection=dg.AssetSelection.assets("champion_model"),
    config={"ops": {"champion_model": {"config": {"action": "rollback", "reason": ""}}}},
    description="Move `champion` back to the version that served before it (set a reason in the config).",
)

manual_promotion_job = dg.define_asset_job(
    "manual_promotion_job",
    selection=dg.AssetSelection.assets("champion_model"),
    config={"ops": {"champion_model": {"config": {"action": "force_promote", "reason": "", "version": ""}}}},
    description="The audited manual override: make a given version champion regardless of its checks.",
)

monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups("monitoring"),
    partitions_def=batches,
    description="The champion's predictions and the drift report for one batch.",
)
