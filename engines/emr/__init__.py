"""The emr_engine (reference §12.2): an EMR cluster's lifecycle and its work as EMR steps. No Hadoop runs where
this is tested: the cluster and steps run on moto's EMR API (tests/engines/emr_moto.py adds what moto lacks),
and one PySpark script really runs on local Spark."""
