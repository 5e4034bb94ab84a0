"""The data lake: a local directory or S3, behind one small interface.

Keys are always `/`-separated and relative (`raw/meter_readings/dt=2026-03-01/...`). Besides bytes,
the interface carries what the lifecycle needs: storage classes, S3 Object Lock legal holds, archive
restores and version-aware deletes. A local directory keeps the same state in a hidden sidecar per
object (`.<name>.meta.json`) and enforces it the same way (an archived object cannot be read until
restored; a held object cannot be deleted or overwritten), so tests and non-AWS stores behave as S3.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

# Tries of a local write whose folder a concurrent delete removed (it had emptied it) in between.
LOCAL_WRITE_ATTEMPTS = 5
STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER", "DEEP_ARCHIVE")
ARCHIVE_CLASSES = ("GLACIER", "DEEP_ARCHIVE")  # readable only after a restore request


class ObjectArchivedError(RuntimeError):
    """The object is in an archive storage class and not restored (S3's `InvalidObjectState`)."""

    def __init__(self, key: str, storage_class: str) -> None:
        super().__init__(f"{key} is in {storage_class}: request a restore first")
        self.key = key
        self.storage_class = storage_class


class ObjectLockedError(RuntimeError):
    """A delete or overwrite refused because a legal hold (S3 Object Lock) protects the object."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    storage_class: str
    etag: str | None  # S3's ETag (the MD5 of a single-part object); None on a local directory
    legal_hold: bool
    restore: str | None  # None (never requested), "ongoing" or "available"
    version_id: str | None = None  # the current version on a versioned bucket

    @property
    def readable(self) -> bool:
        return self.storage_class not in ARCHIVE_CLASSES or self.restore == "available"


def _client_error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


_CLIENT_START = threading.Lock()


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
        import boto3

        # boto3's default session is not thread-safe while it makes a client (threads share a Lake);
        # the client made is. Endpoint, region and credentials are boto3's own configuration
        # (AWS_ENDPOINT_URL for moto or MinIO, AWS_* variables, ~/.aws), read by boto3 itself.
        with _CLIENT_START:
            return boto3.client("s3")

    @property
    def endpoint(self) -> str:
        """The S3 endpoint the lake's client talks to, for messages about an S3 lake."""
        return str(self._s3.meta.endpoint_url)

    def _s3_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def uri(self, key: str) -> str:
        """Where a person finds the object (a path, or an s3:// URL)."""
        if self.is_s3:
            return f"s3://{self.bucket}/{self._s3_key(key)}"
        return str(self.root / key)

    def put(
        self,
        key: str,
        data: bytes,
        content_type: str = "application/octet-stream",
        storage_class: str = "STANDARD",
        tags: dict[str, str] | None = None,
    ) -> str:
        """Write the object (replacing it). `tags` become S3 object tags, which bucket lifecycle rules
        can select on (a local directory has no rules and ignores them)."""
        if self.is_s3:
            from urllib.parse import urlencode

            extra = {"Tagging": urlencode(tags)} if tags else {}
            self._s3.put_object(
                Bucket=self.bucket,
                Key=self._s3_key(key),
                Body=data,
                ContentType=content_type,
                StorageClass=storage_class,
                **extra,
            )
        else:
            path = self.root / key
            if self._local_meta(key).get("legal_hold"):
                raise ObjectLockedError(f"{key} is under a legal hold: it cannot be overwritten")
            _write_file(path, data)
            self._write_local_meta(
                key, {"storage_class": storage_class} if storage_class != "STANDARD" else {}
            )
        return self.uri(key)

    def get(self, key: str) -> bytes:
        """The object's bytes; `ObjectArchivedError` for an archived object not (yet) restored,
        `FileNotFoundError` (naming the key) for one that is not there, on S3 as on a local lake."""
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                return bytes(self._s3.get_object(Bucket=self.bucket, Key=self._s3_key(key))["Body"].read())
            except ClientError as err:
                code = _client_error_code(err)
                if code == "InvalidObjectState":
                    info = self.head(key)
                    raise ObjectArchivedError(key, info.storage_class if info else "GLACIER") from err
                if code in ("404", "NoSuchKey", "NotFound"):
                    raise FileNotFoundError(f"{self.uri(key)} is not in the lake") from err
                if code == "NoSuchBucket":
                    raise FileNotFoundError(
                        f"{self.uri(key)} is not in the lake: bucket {self.bucket} does not exist"
                    ) from err
                raise
        meta = self._local_meta(key)
        storage_class = meta.get("storage_class", "STANDARD")
        if storage_class in ARCHIVE_CLASSES and meta.get("restore") != "available":
            raise ObjectArchivedError(key, storage_class)
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError as err:
            raise FileNotFoundError(f"{self.uri(key)} is not in the lake") from err

    # Lifecycle: storage classes, legal holds, restores, deletes.

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size, storage class, legal hold and restore state; None when it is absent."""
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                head = self._s3.head_object(Bucket=self.bucket, Key=self._s3_key(key))
            except ClientError as err:
                if _client_error_code(err) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise
            restore_header = head.get("Restore")
            restore = None
            if restore_header:
                restore = "ongoing" if 'ongoing-request="true"' in restore_header else "available"
            return ObjectInfo(
                key=key,
                size=int(head["ContentLength"]),
                storage_class=head.get("StorageClass") or "STANDARD",
                etag=str(head.get("ETag", "")).strip('"') or None,
                # Read from HeadObject: GetObjectRetention/GetObjectLegalHold are not served by every
                # S3-compatible store, HeadObject's lock headers are.
                legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
                restore=restore,
                version_id=head.get("VersionId"),
            )
        path = self.root / key
        if not path.is_file():
            return None
        meta = self._local_meta(key)
        return ObjectInfo(
            key=key,
            size=path.stat().st_size,
            storage_class=meta.get("storage_class", "STANDARD"),
            etag=None,
            legal_hold=bool(meta.get("legal_hold")),
            restore=meta.get("restore"),
        )

    def set_storage_class(
        self, key: str, storage_class: str, source_version: str | None = None
    ) -> ObjectInfo:
        """Change the object's storage class in place (S3: CopyObject onto itself, as a lifecycle
        transition does). On a versioned bucket the copy is a new version of `source_version` (default:
        the current one), and the source stays until the caller has checked the copy and calls
        `delete_version`. Returns the new state."""
        if storage_class not in STORAGE_CLASSES:
            raise ValueError(f"unknown storage class {storage_class!r}; one of {', '.join(STORAGE_CLASSES)}")
        if self.is_s3:
            source: dict[str, str] = {"Bucket": self.bucket, "Key": self._s3_key(key)}
            if source_version:
                source["VersionId"] = source_version
            self._s3.copy_object(
                Bucket=self.bucket,
                Key=self._s3_key(key),
                CopySource=source,
                StorageClass=storage_class,
                MetadataDirective="COPY",
            )
        else:
            meta = self._local_meta(key)
            if not (self.root / key).is_file():
                raise FileNotFoundError(key)
            meta["storage_class"] = storage_class
            meta.pop("restore", None)
            self._write_local_meta(key, meta)
        info = self.head(key)
        assert info is not None
        return info

    def delete_version(self, key: str, version_id: str) -> None:
        """Delete one superseded version (S3, versioned buckets); a held version raises `ObjectLockedError`."""
        from botocore.exceptions import ClientError

        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._s3_key(key), VersionId=version_id)
        except ClientError as err:
            if _client_error_code(err) == "AccessDenied":
                raise ObjectLockedError(f"{key} (version {version_id}) is under a legal hold") from err
            raise

    def delete_older_versions(self, key: str) -> int:
        """Drop the superseded versions of a key the caller has just rewritten and checked (versioned S3
        buckets; elsewhere nothing to do). Returns how many went."""
        if not self.is_s3 or not self._versioned:
            return 0
        current = self.head(key)
        older = [v for v, _ in self._versions(key) if current is None or v != current.version_id]
        for version in older:
            self.delete_version(key, version)
        return len(older)

    def set_legal_hold(self, key: str, on: bool) -> None:
        """Place an S3 Object Lock legal hold on the current version, or lift it from every version (the
        bucket must have been created with object lock)."""
        if self.is_s3:
            versions: list[str | None] = [None]
            if not on and self._versioned:
                versions = [v for v, is_marker in self._versions(key) if not is_marker] or [None]
            for version in versions:
                extra: dict[str, str] = {"VersionId": version} if version else {}
                self._s3.put_object_legal_hold(
                    Bucket=self.bucket,
                    Key=self._s3_key(key),
                    LegalHold={"Status": "ON" if on else "OFF"},
                    **extra,
                )
            return
        if not (self.root / key).is_file():
            raise FileNotFoundError(key)
        meta = self._local_meta(key)
        meta["legal_hold"] = on
        self._write_local_meta(key, meta)

    def request_restore(self, key: str, days: int = 7, tier: str = "Standard") -> str:
        """Ask for a temporary readable copy of an archived object; returns "ongoing" or "available".

        S3 answers within hours (Standard) to 12-48 h (Deep Archive); a local directory at once."""
        if self.is_s3:
            from botocore.exceptions import ClientError

            try:
                self._s3.restore_object(
                    Bucket=self.bucket,
                    Key=self._s3_key(key),
                    RestoreRequest={"Days": days, "GlacierJobParameters": {"Tier": tier}},
                )
            except ClientError as err:
                if _client_error_code(err) != "RestoreAlreadyInProgress":
                    raise
            info = self.head(key)
            return info.restore if info and info.restore else "ongoing"
        meta = self._local_meta(key)
        meta["restore"] = "available"
        self._write_local_meta(key, meta)
        return "available"

    def delete(self, key: str) -> None:
        """Delete the object, every version of it on a versioned bucket; `ObjectLockedError` when a
        legal hold protects any version (nothing is deleted then)."""
        if self.is_s3:
            if not self._versioned:
                self._s3.delete_object(Bucket=self.bucket, Key=self._s3_key(key))
                return
            versions = self._versions(key)
            held = [v for v, is_marker in versions if not is_marker and self._version_held(key, v)]
            if held:
                raise ObjectLockedError(f"{key} is under a legal hold (version {held[0]}): nothing deleted")
            for version, _ in versions:
                self.delete_version(key, version)
            return
        if self._local_meta(key).get("legal_hold"):
            raise ObjectLockedError(f"{key} is under a legal hold: it cannot be deleted")
        (self.root / key).unlink(missing_ok=True)
        self._meta_path(key).unlink(missing_ok=True)
        # A folder is no object on S3: one left empty goes too, as its prefix does there (one a writer
        # fills meanwhile stays: rmdir refuses a folder that is not empty).
        # A writer that finds its folder gone between its mkdir and its write makes it again
        # (`_write_file`); a folder another delete removed first ends the walk.
        folder = (self.root / key).parent
        while folder != self.root:
            try:
                folder.rmdir()
            except OSError:  # not empty (a writer filled it), or already gone
                break
            folder = folder.parent

    @cached_property
    def _versioned(self) -> bool:
        status = self._s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
        return status in ("Enabled", "Suspended")

    def _versions(self, key: str) -> list[tuple[str, bool]]:
        """Every version id of exactly this key, with whether it is a delete marker."""
        full = self._s3_key(key)
        found: list[tuple[str, bool]] = []
        paginator = self._s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            found += [(v["VersionId"], False) for v in page.get("Versions", []) if v["Key"] == full]
            found += [(m["VersionId"], True) for m in page.get("DeleteMarkers", []) if m["Key"] == full]
        return found

    def _version_held(self, key: str, version_id: str) -> bool:
        head = self._s3.head_object(Bucket=self.bucket, Key=self._s3_key(key), VersionId=version_id)
        return bool(head.get("ObjectLockLegalHoldStatus") == "ON")

    def _meta_path(self, key: str) -> Path:
        path = self.root / key
        return path.with_name(f".{path.name}.meta.json")

    def _local_meta(self, key: str) -> dict[str, Any]:
        path = self._meta_path(key)
        return dict(json.loads(path.read_text())) if path.is_file() else {}

    def _write_local_meta(self, key: str, meta: dict[str, Any]) -> None:
        path = self._meta_path(key)
        if not meta:
            path.unlink(missing_ok=True)
            return
        _write_file(path, json.dumps(meta, sort_keys=True).encode())

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

    def list_day_prefixes(self, prefix: str) -> list[str]:
        """The `dt=YYYY-MM-DD/` folders directly under `prefix` (which ends in `/`), sorted: one entry
        per day, so finding the days of a dataset never lists its objects."""
        if self.is_s3:
            found: list[str] = []
            strip = len(self.prefix) + 1 if self.prefix else 0
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix), Delimiter="/"):
                found.extend(p["Prefix"][strip:] for p in page.get("CommonPrefixes", []))
            return sorted(p for p in found if p.rstrip("/").rsplit("/", 1)[-1].startswith("dt="))
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(f"{prefix}{d.name}/" for d in base.iterdir() if d.is_dir() and d.name.startswith("dt="))

    def last_written(self, prefix: str) -> datetime | None:
        """When the newest object under `prefix` was written (S3's LastModified, a file's mtime), UTC;
        None when there is none. One listing of the prefix."""
        if self.is_s3:
            newest: datetime | None = None
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix)):
                for obj in page.get("Contents", []):
                    newest = obj["LastModified"] if newest is None else max(newest, obj["LastModified"])
            return newest
        times = [(self.root / key).stat().st_mtime for key in self.list(prefix)]
        return datetime.fromtimestamp(max(times), UTC) if times else None

    def list_sizes(self, prefix: str = "") -> list[tuple[str, int, str]]:
        """(key, size in bytes, storage class) of each object under `prefix`, sorted by key. On S3 the
        listing carries size and class: no request per object (a local directory reads the sidecars)."""
        if self.is_s3:
            found: list[tuple[str, int, str]] = []
            strip = len(self.prefix) + 1 if self.prefix else 0
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix)):
                found.extend(
                    (obj["Key"][strip:], int(obj["Size"]), obj.get("StorageClass") or "STANDARD")
                    for obj in page.get("Contents", [])
                )
            return sorted(found)
        return [
            (key, (self.root / key).stat().st_size, self._local_meta(key).get("storage_class", "STANDARD"))
            for key in self.list(prefix)
        ]

    def holding(self, objects: Mapping[str, bytes]) -> set[str]:
        """The keys of `objects` under which the lake already holds exactly those bytes, readable (not in
        an archive class): what a writer of many objects may skip. On S3 one listing of the keys' common
        prefix, no request per object: an object matches when its ETag is the MD5 of the bytes, which S3
        makes it for a single-part upload without SSE-KMS or SSE-C (`put`'s); any other ETag
        (multipart, KMS) never matches, so a changed object is never taken as held, at worst an
        unchanged one is written again. A local directory compares the files' bytes."""
        if not objects:
            return set()
        held: set[str] = set()
        if self.is_s3:
            strip = len(self.prefix) + 1 if self.prefix else 0
            paginator = self._s3.get_paginator("list_objects_v2")
            # By characters, as an S3 prefix is (not by path components).
            prefix = self._s3_key(os.path.commonprefix(list(objects)))  # noqa: RUF071
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    key = obj["Key"][strip:]
                    data = objects.get(key)
                    if (
                        data is not None
                        and int(obj["Size"]) == len(data)
                        and (obj.get("StorageClass") or "STANDARD") not in ARCHIVE_CLASSES
                        and str(obj.get("ETag", "")).strip('"')
                        == hashlib.md5(data, usedforsecurity=False).hexdigest()
                    ):
                        held.add(key)
            return held
        for key, data in objects.items():
            path = self.root / key
            if (
                path.is_file()
                and path.stat().st_size == len(data)
                and self._local_meta(key).get("storage_class", "STANDARD") not in ARCHIVE_CLASSES
                and path.read_bytes() == data
            ):
                held.add(key)
        return held

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


def _write_file(path: Path, data: bytes) -> None:
    """Write `path` whole (a temporary file beside it, then a rename: readers never see half of it),
    making its folders. A local delete removes the folders it empties, as the prefix goes on S3, so a
    write in the same folder (another thread of the archive, another process) can find the folder gone
    between its mkdir and its open: it makes it again, LOCAL_WRITE_ATTEMPTS times at most. Once the
    temporary file is in the folder, the folder is not empty and no delete removes it."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{threading.get_ident()}")
    for attempt in range(1, LOCAL_WRITE_ATTEMPTS + 1):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            break
        except (FileNotFoundError, FileExistsError):
            # FileExistsError: pathlib's mkdir(parents=True) makes a missing parent, then the folder
            # with exist_ok, and reads a folder made and removed meanwhile as a file in the way.
            if attempt == LOCAL_WRITE_ATTEMPTS or (path.parent.exists() and not path.parent.is_dir()):
                raise
    tmp.replace(path)
