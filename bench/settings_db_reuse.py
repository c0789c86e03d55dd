"""An experiment, not the shipped configuration: workers that keep their Postgres connection.

Celery 5.7's Django fixup closes every database connection before and after each task unless
CELERY_DB_REUSE_MAX is set (it ignores CONN_MAX_AGE), so each delivery task opens a new
Postgres connection. `python -m bench.throughput --worker-settings bench.settings_db_reuse`
measures what reusing it for up to 1,000 tasks would change.
"""

from config.settings import *  # noqa: F401,F403

CELERY_DB_REUSE_MAX = 1000
