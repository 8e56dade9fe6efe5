"""All page routes (no API here: pages call the domain services directly)."""

from fastapi import APIRouter

from tekudasai.web import auth_pages

router = APIRouter(include_in_schema=False)
router.include_router(auth_pages.router)
