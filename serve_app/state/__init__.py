"""Backup and restore of what outlives a cluster (`smmf state export|import`): the state store's
entries, moved between deployments (a laptop's SQLite file, a cluster's GCS)."""
