"""The data lake: a local directory or S3, behind one small interface.

Keys are always `/`-separated and relative (`raw/meter_readings/dt=2026-03-01/...`).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg


class Lake:
    """Put/get bytes by key on a local directory or an `s3://bucket/prefix` URL."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parsed = urlparse(self.url)
        self.is_s3 = parsed.scheme == "s3"
        if self.is_s3:
            self.bucket = parsed.netloc
            self.prefix = parsed.path.lstrip("/")
        else:
            self.root = Path(parsed.path if parsed.scheme == "file" else self.url).resolve()

    @cached_property
    def _s3(self) -> Any:
        import boto3  # AWS_ENDPOINT_URL is honoured by boto3 itself (moto, MinIO)

        return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)

    def _s3_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """Where a person finds the object (a path, or an s3:// URL)."""
        if self.is_s3:
            return f"s3://{self.bucket}/{self._s3_key(key)}"
        return str(self.root / key)

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        if self.is_s3:
            self._s3.put_object(
                Bucket=self.bucket, Key=self._s3_key(key), Body=data, ContentType=content_type
            )
        else:
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            tmp.write_bytes(data)
            tmp.replace(path)  # atomic: readers never see half an object
        return self.uri(key)

    def get(self, key: str) -> bytes:
        if self.is_s3:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=self._s3_key(key))["Body"].read())
        return (self.root / key).read_bytes()

    def exists(self, key: str) -> bool:
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                self._s3.head_object(Bucket=self.bucket, Key=self._s3_key(key))
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    return False
                raise
            return True
        return (self.root / key).is_file()

    def list(self, prefix: str = "") -> list[str]:
        """Keys under `prefix`, sorted."""
        if self.is_s3:
            keys: list[str] = []
            strip = len(self.prefix) + 1 if self.prefix else 0
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix)):
                keys.extend(obj["Key"][strip:] for obj in page.get("Contents", []))
            return sorted(keys)
        base = self.root / prefix
        if base.is_file():
            return [prefix]
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class LakeResource(dg.ConfigurableResource):
    """The lake as a Dagster resource: `url` is a directory or `s3://bucket/prefix`."""

    url: str = ".metrify/lake"

    def get_lake(self) -> Lake:
        return Lake(self.url)
