"""MediaStore on any S3-compatible object store (AWS S3, GCS interop, MinIO, SeaweedFS).

``s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1&prefix=p/&addressing=path``:
``endpoint`` is omitted for AWS itself; ``addressing`` defaults to path-style when an endpoint
is given (what MinIO and SeaweedFS expect) and to the SDK's choice otherwise. Credentials are
handed in by the composition root (read from Settings); without them the SDK's default chain
applies. boto3 is synchronous: every call runs in a worker thread, and its exceptions are
mapped here, once, to NotFound and Unavailable.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from gochat.errors import NotFound, Unavailable

CHUNK = 262_144
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    endpoint: str | None = None
    region: str = "us-east-1"
    prefix: str = ""
    addressing: str = "auto"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("an S3 media URL looks like s3://bucket?endpoint=http://host:port&region=...")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        endpoint = query.get("endpoint") or None
        prefix = (query.get("prefix") or parts.path).strip("/")
        return cls(
            bucket=parts.netloc,
            endpoint=endpoint,
            region=query.get("region") or "us-east-1",
            prefix=prefix + "/" if prefix else "",
            addressing=query.get("addressing") or ("path" if endpoint else "auto"),
        )


@dataclass(frozen=True, slots=True)
class S3Credentials:
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None


class S3MediaStore:
    def __init__(self, location: S3Location, credentials: S3Credentials | None = None) -> None:
        self.location = location
        self._client = _client(location, credentials or S3Credentials())

    def _key(self, key: str) -> str:
        return self.location.prefix + key

    async def put(self, key: str, source: Path | bytes, content_type: str) -> None:
        await self._call(self._put_sync, self._key(key), source, content_type)

    def _put_sync(self, key: str, source: Path | bytes, content_type: str) -> None:
        bucket = self.location.bucket
        if isinstance(source, bytes):
            self._client.put_object(Bucket=bucket, Key=key, Body=source, ContentType=content_type)
            return
        with source.open("rb") as body:
            self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    async def open(self, key: str) -> AsyncIterator[bytes]:
        found = await self._call(self._client.get_object, Bucket=self.location.bucket, Key=self._key(key))
        return self._chunks(found["Body"])

    async def _chunks(self, body: Any) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._call(body.read, CHUNK):
                yield chunk
        finally:
            await asyncio.to_thread(body.close)

    async def delete(self, key: str) -> None:
        await self._call(self._client.delete_object, Bucket=self.location.bucket, Key=self._key(key))

    async def exists(self, key: str) -> bool:
        try:
            await self._call(self._client.head_object, Bucket=self.location.bucket, Key=self._key(key))
        except NotFound:
            return False
        return True

    async def signed_url(
        self, key: str, expires_in_s: int, *, content_type: str, disposition: str
    ) -> str | None:
        params = {
            "Bucket": self.location.bucket,
            "Key": self._key(key),
            "ResponseContentType": content_type,
            "ResponseContentDisposition": disposition,
        }
        url: str = await self._call(
            self._client.generate_presigned_url, "get_object", Params=params, ExpiresIn=expires_in_s
        )
        return url

    def local_path(self, key: str) -> Path | None:
        return None

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except ClientError as exc:
            if _error_code(exc) in MISSING:
                raise NotFound("no such media") from exc
            raise Unavailable("media storage refused the request") from exc
        except (BotoCoreError, OSError) as exc:
            raise Unavailable("media storage is unavailable") from exc


def _error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _client(location: S3Location, credentials: S3Credentials) -> Any:
    session = boto3.session.Session(
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        region_name=location.region,
    )
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": location.addressing},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=32,
    )
    return session.client("s3", endpoint_url=location.endpoint, config=config)
