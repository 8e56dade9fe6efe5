"""ASGI entry point for worker processes: `tekudasai.asgi:app`."""

from tekudasai.app import create_app

app = create_app()
