"""The s3_engine (reference §12.4): server-side copies and data checks on S3."""
