# gunicorn settings for evalhub (gunicorn -c deploy/gunicorn.conf.py wsgi:app).
# Every worker is stateless: sessions are signed cookies checked against the database, jobs go through the
# queue, the screening index is rebuilt per process from the database. Scale by adding workers or machines.
import multiprocessing
import os

bind = os.environ.get("EVALHUB_BIND", "127.0.0.1:8000")  # nginx in front terminates TLS
workers = int(os.environ.get("EVALHUB_WORKERS", min(2 * multiprocessing.cpu_count() + 1, 8)))
worker_class = "sync"
# Uploads are read whole (≤ EVALHUB_MAX_UPLOAD_MB) and screened: allow a minute before a worker is killed.
timeout = int(os.environ.get("EVALHUB_WORKER_TIMEOUT", 60))
graceful_timeout = 30
keepalive = 5
# Recycle workers now and then so that a slow leak in a library cannot grow without bound.
max_requests = 2000
max_requests_jitter = 200
# Request lines are logged by evalhub itself (EVALHUB_LOG_JSON=1: one JSON line per request with the user).
accesslog = None
errorlog = "-"
loglevel = "info"
forwarded_allow_ips = "127.0.0.1"
