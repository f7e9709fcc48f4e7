"""Where raw uploaded files are kept: a local folder (default) or an S3-compatible store.

Both implement `domain.ports.FileStore`; `open_file_store(settings)` picks one. Keys look like
`<tenant>/<dataset>/<document>/<revision>-<file name>`; each backend confines keys to its root.
"""

from __future__ import annotations

from loom_rag.storage.keys import document_key, validate_key
from loom_rag.storage.local import LocalFileStore

__all__ = ["LocalFileStore", "document_key", "open_file_store", "validate_key"]


def open_file_store(settings):
    if settings.storage_backend == "s3":
        from loom_rag.storage.s3 import S3FileStore

        return S3FileStore(bucket=settings.s3_bucket, prefix=settings.s3_prefix,
                           endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
                           access_key_id=settings.s3_access_key_id,
                           secret_access_key=settings.s3_secret_access_key)
    return LocalFileStore(settings.storage_root())
