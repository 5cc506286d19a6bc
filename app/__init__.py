"""Rollcall's service: FastAPI routers over the services, storage and the face pipeline (``ml``)."""
