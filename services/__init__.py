"""The service around `core`: HTTP API, Celery worker, and the database they share."""
