"""Page handlers of the web UI, one module per area: runs, artifacts, training, lineage, models."""
