"""JSON logs, one object per line, when JSON_LOGS=true (for a log collector); plain text otherwise."""
import logging

from pythonjsonlogger.json import JsonFormatter

from services.config import get_settings

LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task")


def use_json_logs_if_asked(*loggers: logging.Logger) -> None:
    """Gives every handler of the service's loggers (and of `loggers`) a JSON formatter."""
    if not get_settings().JSON_LOGS:
        return
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                              rename_fields={"asctime": "time", "levelname": "level", "name": "logger"})
    for logger in [*map(logging.getLogger, LOGGERS), *loggers]:
        for handler in logger.handlers:
            handler.setFormatter(formatter)
