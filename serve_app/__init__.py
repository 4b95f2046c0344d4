"""smmf-serve: DB-GPT's model cluster (SMMF) rebuilt on Ray Serve."""
