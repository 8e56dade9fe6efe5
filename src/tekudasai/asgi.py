"""ASGI entry point for worker processes: `tekudasai.asgi:app`."""

from tekudasai.app import create_app
from tekudasai.core.runtime import exit_with_supervisor, tune_garbage_collector

exit_with_supervisor()
app = create_app()
tune_garbage_collector()  # after the app is built: its objects are frozen
