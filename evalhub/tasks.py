"""The queue the worker consumes: `huey_consumer evalhub.tasks.huey`."""
from evalhub import create_app
from evalhub.core import jobs

app = create_app()
huey = jobs.huey
