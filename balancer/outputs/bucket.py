"""The bucket, through aiobotocore: streamed uploads (multipart above one
part), size checks, presigned GETs, streamed reads and deletes.

Signing is botocore's (SigV4); credentials come from the standard AWS chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

from aiobotocore.session import AioSession
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from balancer.config.delivery_settings import OutputSettings

PART_SIZE = 8 * 1024 * 1024  # multipart above this; each part is held once, never the file
MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class BucketError(Exception):
    """The store could not be reached or refused an operation."""


@dataclass(frozen=True)
class StoredObject:
    size: int
    content_type: str | None
    content_range: str | None
    body: Any  # an aiobotocore StreamingBody; iterate with `iter_chunks`


def client_config(settings: OutputSettings) -> Config:
    """SigV4 everywhere (S3-compatible stores refuse SigV2 presigns); checksums
    only where S3 requires them, so R2, MinIO and rclone accept every call;
    no SDK retries: the copier retries a whole file with its own backoff."""
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": settings.addressing},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=60,
    )


@contextlib.asynccontextmanager
async def open_bucket(settings: OutputSettings) -> AsyncIterator[Bucket]:
    session = AioSession()
    async with session.create_client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=client_config(settings),
    ) as client:
        yield Bucket(client, settings.bucket)


class Bucket:
    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    async def size(self, key: str) -> int | None:
        """The stored size of `key`, or None if there is no such object."""
        head = await _unless_missing(self.client.head_object(Bucket=self.name, Key=key))
        return None if head is None else int(head["ContentLength"])

    async def put(
        self, key: str, chunks: AsyncIterator[bytes], content_type: str | None
    ) -> tuple[int, int]:
        """Upload a stream; one PUT if it fits in a part, multipart otherwise.
        Returns (bytes, parts)."""
        extra = {"ContentType": content_type} if content_type else {}
        parts = _parts(chunks)
        try:
            head = [await anext(parts, b"")]
            second = await anext(parts, None)
            if second is None:
                body = head.pop()
                await self.client.put_object(Bucket=self.name, Key=key, Body=body, **extra)
                return len(body), 1
            head.append(second)
            del second  # from here on, a part is referenced only while it is sent
            return await self._multipart(key, _prepend(head, parts), extra)
        except (ClientError, BotoCoreError) as exc:
            raise BucketError(_describe(exc)) from exc

    async def _multipart(
        self, key: str, parts: AsyncIterator[bytes], extra: dict[str, str]
    ) -> tuple[int, int]:
        started = await self.client.create_multipart_upload(Bucket=self.name, Key=key, **extra)
        upload_id = started["UploadId"]
        done: list[dict[str, Any]] = []
        total = 0
        try:
            async for part in parts:
                number = len(done) + 1
                reply = await self.client.upload_part(
                    Bucket=self.name, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                done.append({"ETag": reply["ETag"], "PartNumber": number})
                total += len(part)
            await self.client.complete_multipart_upload(
                Bucket=self.name, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(
                    Bucket=self.name, Key=key, UploadId=upload_id
                )
            raise
        return total, len(done)

    async def presign(self, key: str, ttl: float) -> str:
        url: str = await self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=int(ttl)
        )
        return url

    async def get(self, key: str, range_header: str | None = None) -> StoredObject | None:
        """A streamed read of `key` (optionally a byte range), or None if absent."""
        extra = {"Range": range_header} if range_header else {}
        reply = await _unless_missing(self.client.get_object(Bucket=self.name, Key=key, **extra))
        if reply is None:
            return None
        return StoredObject(
            int(reply["ContentLength"]),
            reply.get("ContentType"),
            reply.get("ContentRange"),
            reply["Body"],
        )

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many went."""
        count = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix
            )
            async for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    await self.client.delete_objects(Bucket=self.name, Delete={"Objects": keys})
                    count += len(keys)
        except (ClientError, BotoCoreError) as exc:
            raise BucketError(_describe(exc)) from exc
        return count


async def _parts(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Regroup a byte stream into PART_SIZE parts (the last one shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= PART_SIZE:
            with memoryview(buffer) as view:
                part = bytes(view[:PART_SIZE])  # one copy, no intermediate slice
            del buffer[:PART_SIZE]
            yield part
            del part
    if buffer:
        yield bytes(buffer)


async def _prepend(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """`head` then `rest`, dropping each part of `head` as it is handed out."""
    while head:
        yield head.pop(0)
    async for part in rest:
        yield part


async def _unless_missing(call: Awaitable[dict[str, Any]]) -> dict[str, Any] | None:
    """The reply of an object call, None when the object does not exist;
    any other failure is a BucketError."""
    try:
        return await call
    except ClientError as exc:
        if _code(exc) in MISSING:
            return None
        raise BucketError(_describe(exc)) from exc
    except BotoCoreError as exc:
        raise BucketError(_describe(exc)) from exc


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return f"{_code(exc) or 'error'}: {exc.response.get('Error', {}).get('Message', '')}"
    return f"{type(exc).__name__}: {exc}"
