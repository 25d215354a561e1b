"""The Celery worker: claims a job, trains it with core, saves what it produced."""
