"""All page routes (no API here: pages call the domain services directly)."""

from fastapi import APIRouter

from tekudasai.web import (
    admin_pages,
    agent_pages,
    app_shell,
    auth_pages,
    automation_pages,
    customer_pages,
    report_pages,
    security_pages,
    service_level_pages,
    token_pages,
)

router = APIRouter(include_in_schema=False)
for module in (
    auth_pages,
    customer_pages,
    agent_pages,
    admin_pages,
    service_level_pages,
    token_pages,
    security_pages,
    app_shell,
    report_pages,
    automation_pages,
):
    router.include_router(module.router)
