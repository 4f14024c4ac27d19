"""HTTP edge: the FastAPI app and the live (reloadable) policy."""
