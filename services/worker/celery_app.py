"""The worker's Celery app: `celery -A services.worker.celery_app worker`.

Delivery is at-least-once: a task is acknowledged only after it ran (acks late), comes back
when the process running it dies (reject on worker lost), and a worker holds one task at a
time (prefetch of one) so a crash strands nothing else. What a broker cannot redeliver —
a whole worker killed, a broker that lost its data — the job table's sweeper sends again."""
from celery import signals

from services.config import get_settings
from services.queue import make_celery

app = make_celery()
app.conf.update(
    include=["services.worker.tasks"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    # A broker outage must not kill running jobs: they finish and write to the database; the ack may be
    # lost, and the duplicate delivery that follows is refused by the claim.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    # Jobs stop themselves at their time limit (checked after every step); this only ends a step that hangs.
    task_time_limit=get_settings().MAX_TIME_LIMIT_SECONDS + 300,
)


@signals.worker_process_init.connect
def fresh_connections_in_child(**_):
    from services.store.db import forget_connections_after_fork
    from services.worker import heartbeat, metrics
    forget_connections_after_fork()
    heartbeat.start()  # the process that runs the jobs beats for itself and for them
    metrics.serve()


@signals.worker_process_shutdown.connect
def leave_the_workers_table(**_):
    from services.worker import heartbeat
    heartbeat.stop()


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def json_logs(logger=None, **_):
    from services.logs import use_json_logs_if_asked
    use_json_logs_if_asked(logger)


@signals.worker_ready.connect
def start_sweeper(**_):
    from services.worker.sweeper import start_sweeper_thread
    start_sweeper_thread()
