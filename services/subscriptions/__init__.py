"""Subscriptions (reference §9): listing a dataset's S3 files, S3 notifications, batches and consumption."""
