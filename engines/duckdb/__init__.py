"""The duckdb_engine: the embedded local data mart (one DuckDB file per datastore), so `dart up` alone can
load, query and unload data; datasets are read from S3 through the shared dataset layer (engines.data)."""
