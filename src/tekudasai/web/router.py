"""Server-rendered pages (filled in by the web UI work)."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
