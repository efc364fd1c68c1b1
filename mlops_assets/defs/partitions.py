import dagster as dg

BATCHES = "batches"
batches = dg.DynamicPartitionsDefinition(name=BATCHES)
