"""The schema layer: every entity's `data` JSON schema, the built-in trigger types, and defaulting plus
validation as the original did it (reference §2.2, §3, §7; design §5). Pure: no I/O, no framework.

The `*_SCHEMA` constants are shared; treat them as read-only and call the builder for a private copy.
"""

from __future__ import annotations

from services.domain.schemas.action import ACTION_ON_FAILURE, ACTION_STATES, action_schema
from services.domain.schemas.dataset import (
    COMPRESSIONS,
    DATA_TYPES,
    FILE_FORMATS,
    LOAD_TYPES,
    ROW_FORMATS,
    column_schema,
    columns_schema,
    data_format_schema,
    dataset_schema,
)
from services.domain.schemas.datastore import DATASTORE_STATES, datastore_schema
from services.domain.schemas.engine import action_type_schema, check_engine_schemas, engine_schema
from services.domain.schemas.event import EVENT_STATES, event_schema
from services.domain.schemas.fields import Schema, envelope_schema
from services.domain.schemas.subscription import SUBSCRIPTION_STATES, subscription_schema
from services.domain.schemas.trigger import TRIGGER_STATES, trigger_schema, trigger_type_schema
from services.domain.schemas.trigger_types import (
    TRIGGER_TYPES,
    TriggerType,
    all_trigger_types,
    listed_trigger_types,
    storable,
    trigger_type,
)
from services.domain.schemas.validate import (
    SchemaValidationError,
    apply_defaults,
    check_schema,
    default_and_validate,
    secret_properties,
    split_secrets,
    validator_class,
)
from services.domain.schemas.workflow import (
    WORKFLOW_INSTANCE_STATES,
    WORKFLOW_ON_FAILURE,
    WORKFLOW_STATES,
    workflow_instance_schema,
    workflow_schema,
)

ENGINE_SCHEMA = engine_schema()
DATASET_SCHEMA = dataset_schema()
WORKFLOW_SCHEMA = workflow_schema()
WORKFLOW_INSTANCE_SCHEMA = workflow_instance_schema()
SUBSCRIPTION_SCHEMA = subscription_schema()
EVENT_SCHEMA = event_schema()


def schema_for(category: str) -> Schema:
    """A fresh `data` schema for an entity category (`GET /schema/<category>`). Datastore, action and trigger
    schemas depend on an engine or trigger type; this gives their generic form, without declared args."""
    builders = {
        "engine": engine_schema,
        "dataset": dataset_schema,
        "datastore": lambda: datastore_schema(None),
        "action": lambda: action_schema(None),
        "workflow": workflow_schema,
        "workflow_instance": workflow_instance_schema,
        "trigger": lambda: trigger_schema(None),
        "subscription": subscription_schema,
        "event": event_schema,
    }
    if category not in builders:
        raise KeyError(f"no schema for {category!r}")
    return builders[category]()


__all__ = [
    "ACTION_ON_FAILURE",
    "ACTION_STATES",
    "COMPRESSIONS",
    "DATASET_SCHEMA",
    "DATASTORE_STATES",
    "DATA_TYPES",
    "ENGINE_SCHEMA",
    "EVENT_SCHEMA",
    "EVENT_STATES",
    "FILE_FORMATS",
    "LOAD_TYPES",
    "ROW_FORMATS",
    "SUBSCRIPTION_SCHEMA",
    "SUBSCRIPTION_STATES",
    "TRIGGER_STATES",
    "TRIGGER_TYPES",
    "WORKFLOW_INSTANCE_SCHEMA",
    "WORKFLOW_INSTANCE_STATES",
    "WORKFLOW_ON_FAILURE",
    "WORKFLOW_SCHEMA",
    "WORKFLOW_STATES",
    "Schema",
    "SchemaValidationError",
    "TriggerType",
    "action_schema",
    "action_type_schema",
    "all_trigger_types",
    "apply_defaults",
    "check_engine_schemas",
    "check_schema",
    "column_schema",
    "columns_schema",
    "data_format_schema",
    "dataset_schema",
    "datastore_schema",
    "default_and_validate",
    "engine_schema",
    "envelope_schema",
    "event_schema",
    "listed_trigger_types",
    "schema_for",
    "secret_properties",
    "split_secrets",
    "storable",
    "subscription_schema",
    "trigger_schema",
    "trigger_type",
    "trigger_type_schema",
    "validator_class",
    "workflow_instance_schema",
    "workflow_schema",
]
