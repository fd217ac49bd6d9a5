"""The postgresql_engine: SQL, dataset loads from S3 (COPY FROM STDIN) and unloads to S3 (COPY TO STDOUT) on any
PostgreSQL (RDS, Aurora, a local server); the redshift_engine shares its SQL path."""
