"""Errors of the uploads domain."""

from __future__ import annotations

from tekudasai.core.errors import AppError, NotFound


class UnsupportedFileType(AppError):
    status_code = 415
    code = "UNSUPPORTED_FILE_TYPE"
    message = "Only JPEG, PNG, HEIC, PDF and plain-text (UTF-8) files can be uploaded."


class UploadNotFound(NotFound):
    message = "File not found."
