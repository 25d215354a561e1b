# One image for every service of the stack (migrate, api, worker); docker-compose.yml picks the command.
FROM python:3.11-slim

# Graphviz's `dot` renders the computation-graph SVGs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends graphviz \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY alembic.ini .
COPY migrations migrations
COPY core core
COPY services services

RUN useradd --create-home --uid 10001 service
USER service
ENV PYTHONUNBUFFERED=1
EXPOSE 8000
CMD ["uvicorn", "services.api.app:app", "--host", "0.0.0.0", "--port", "8000"]
