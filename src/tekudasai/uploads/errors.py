"""Errors of the uploads domain."""

from __future__ import annotations

from tekudasai.core.errors import AppError, NotFound


class UnsupportedFileType(AppError):
    status_code = 415
    code = "UNSUPPORTED_FILE_TYPE"
    message = "Only JPEG, PNG, HEIC, PDF and plain-text (UTF-8) files can be uploaded."


class UploadNotFound(NotFound):
    message = "File not found."


class StorageUnavailable(AppError):
    """The upload store (an S3-compatible service) cannot be reached or refused the request."""

    status_code = 503
    code = "STORAGE_UNAVAILABLE"
    message = "The file store is not available right now; try again shortly."
    retry_after_s = 5

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(self.retry_after_s)})
