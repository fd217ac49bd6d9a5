"""boto3 clients built in one place from the AWS endpoint and region (DART_AWS_ENDPOINT_URL, DART_AWS_REGION;
credentials from boto3's usual chain), one client per service, reused: clients are thread-safe, and building
one resolves credentials, which may cost a metadata-service round trip."""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from botocore.config import Config


class AwsClients:
    """The boto3 clients of one process, owned by the composition root."""

    def __init__(self, region: str, endpoint_url: str | None = None, **credentials: Any) -> None:
        self.region = region
        self.endpoint_url = endpoint_url or None
        self.credentials = credentials
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """This process's client of ``service`` (s3, logs ...) at the configured endpoint and region."""
        with self._lock:
            if service not in self._clients:
                config = Config(s3={"addressing_style": "path"}) if service == "s3" and self.endpoint_url else None
                self._clients[service] = boto3.Session(**self.credentials).client(
                    service, region_name=self.region, endpoint_url=self.endpoint_url, config=config)
            return self._clients[service]

    def s3_listing(self) -> Any:
        """The S3 client that lists subscriptions' keys (see ``listing_client``)."""
        with self._lock:
            if "s3-listing" not in self._clients:
                self._clients["s3-listing"] = listing_client(self.region, self.endpoint_url, **self.credentials)
            return self._clients["s3-listing"]


def listing_client(region: str, endpoint_url: str | None, **credentials: Any) -> Any:
    """An S3 client for listing: timestamps are left as the strings S3 sent. Listings never read them, and
    botocore's parsing of every key's LastModified (dateutil) costs more than the rest of a page's handling.
    A local endpoint gets path-style addressing (no bucket subdomains on loopback)."""
    session = botocore.session.get_session()
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=lambda value: value)
    return boto3.Session(botocore_session=session, **credentials).client(
        "s3", region_name=region, endpoint_url=endpoint_url,
        config=Config(s3={"addressing_style": "path"}) if endpoint_url else None)
