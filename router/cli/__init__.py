"""The ``slm-router`` command line (typer): ``app`` is the console entry point."""

from .main import app, main

__all__ = ["app", "main"]
