"""What the uploads API answers, for the OpenAPI document (and validated on the way out)."""

from __future__ import annotations

from tekudasai.core.schemas import CamelModel


class UploadOut(CamelModel):
    """The contract's upload object (`service.upload_view`); a `file-upload` answer holds it."""

    filename: str
    original_name: str
    url: str
    size: int
    mime_type: str
