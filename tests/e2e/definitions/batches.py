"""A subscription-batch chain as Python definitions: new files of the weblogs dataset, once 1 MB of them is
unconsumed, start a workflow that consumes them and loads the dataset; an external event starts it too."""

WEBLOGS = {
    "name": "apply-weblogs",
    "table_name": "weblogs",
    "location": "s3://apply-bucket/weblogs",
    "load_type": "INSERT",
    "data_format": {"file_format": "TEXTFILE", "row_format": "DELIMITED", "delimited_by": "\t"},
    "columns": [{"name": "ip", "data_type": "STRING"}, {"name": "status", "data_type": "INT"}],
    "compression": "GZIP",
}

datasets = [WEBLOGS, {**WEBLOGS, "name": "apply-weblogs-daily", "location": "s3://apply-bucket/daily"}]
subscriptions = [{"name": "apply-weblogs-new", "dataset": "apply-weblogs"}]
events = [{"name": "apply-logs-arrived", "description": "an upstream system says new logs landed"}]
workflows = [{
    "name": "apply-load-weblogs",
    "datastore": "apply-demo",
    "state": "ACTIVE",
    "actions": [
        {"name": "consume", "action_type_name": "consume_subscription",
         "args": {"subscription": "apply-weblogs-new"}},
        {"name": "load", "action_type_name": "fake_load_dataset", "args": {"dataset": "apply-weblogs"}},
    ],
}]
triggers = [
    {"name": "apply-weblogs-batch", "trigger_type_name": "subscription_batch", "state": "ACTIVE",
     "args": {"subscription": "apply-weblogs-new", "unconsumed_data_size_in_bytes": 1000000},
     "workflows": ["apply-load-weblogs"]},
    {"name": "apply-weblogs-event", "trigger_type_name": "event", "state": "ACTIVE",
     "args": {"event": "apply-logs-arrived"}, "workflows": ["apply-load-weblogs"]},
]
