"""The REST API: routes (routes.py), resources by noun, auth middleware and error mapping."""
