"""Stream one file field out of a multipart body, chunk by chunk, never holding it whole."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from tekudasai.core.errors import ValidationFailed

MAX_PARTS = 10
# python-multipart's own limit (it raises FormParserError beyond it); RFC 2046 asks for 70.
MAX_BOUNDARY = 256


def _bad(message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"field": "file", "message": message}])


async def read_file_field(
    chunks: AsyncIterable[bytes],
    content_type: str,
    *,
    field: str,
    write: Callable[[bytes], Awaitable[None]],
) -> str:
    """Feed the part named `field` to `write` as it arrives; answer the file name it was sent."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise _bad("Send the file as multipart/form-data in the field 'file'.")
    if len(boundary) > MAX_BOUNDARY:
        raise _bad(f"The multipart boundary is longer than {MAX_BOUNDARY} characters.")
    events: list[tuple[str, Any]] = []
    name_buf, value_buf = bytearray(), bytearray()
    headers: dict[bytes, bytes] = {}

    def header_end() -> None:
        headers[bytes(name_buf).lower()] = bytes(value_buf)
        name_buf.clear()
        value_buf.clear()

    def headers_done() -> None:
        events.append(("headers", dict(headers)))
        headers.clear()

    callbacks: Any = {
        "on_header_field": lambda data, start, end: name_buf.extend(data[start:end]),
        "on_header_value": lambda data, start, end: value_buf.extend(data[start:end]),
        "on_header_end": header_end,
        "on_headers_finished": headers_done,
        "on_part_data": lambda data, start, end: events.append(("data", bytes(data[start:end]))),
        "on_part_end": lambda: events.append(("end", None)),
    }
    parser = MultipartParser(boundary, callbacks)
    filename: str | None = None
    in_file = done = False
    parts = 0

    async def drain() -> None:
        nonlocal filename, in_file, done, parts
        for event, value in events:
            if event == "headers":
                parts += 1
                if parts > MAX_PARTS:
                    raise _bad("Too many parts in the multipart body.")
                _, disposition = parse_options_header(value.get(b"content-disposition", b""))
                name = disposition.get(b"name", b"").decode("utf-8", "replace")
                sent_name = disposition.get(b"filename")
                if name == field and sent_name is not None and not done:
                    in_file = True
                    filename = sent_name.decode("utf-8", "replace")
            elif event == "data" and in_file:
                await write(value)
            elif event == "end" and in_file:
                in_file, done = False, True
        events.clear()

    try:
        async for chunk in chunks:
            if chunk:
                parser.write(chunk)
                await drain()
        parser.finalize()
        await drain()
    except (MultipartParseError, FormParserError, ValueError):
        raise _bad("The multipart body is malformed.") from None
    if not done or filename is None:
        raise _bad("The field 'file' with a file is required.")
    return filename
