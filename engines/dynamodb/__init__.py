"""The dynamodb_engine: DynamoDB tables shaped by a dataset (reference §12.5), created, deleted and loaded
straight from the dataset's files with parallel BatchWriteItem calls (the original ran a transient EMR cluster)."""
