"""The redshift_engine (reference §12.3): the cluster's lifecycle through the Redshift API, the postgresql
engine's SQL path, and loads and unloads as Redshift's server-side COPY and UNLOAD. No Redshift runs here: the
lifecycle is tested on moto's Redshift API, COPY/UNLOAD as generated SQL, the shared SQL path on
PostgreSQL."""
