"""All page routes (no API here: pages call the domain services directly)."""

from fastapi import APIRouter

from tekudasai.web import (
    admin_pages,
    agent_pages,
    auth_pages,
    customer_pages,
    security_pages,
    token_pages,
)

router = APIRouter(include_in_schema=False)
for module in (
    auth_pages,
    customer_pages,
    agent_pages,
    admin_pages,
    token_pages,
    security_pages,
):
    router.include_router(module.router)
