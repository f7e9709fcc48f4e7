"""loom-orchestrator: Durable workflow engine: takes runs from the runs.requested work queue,
executes app graphs and publishes ordered run events.
"""

__version__ = "0.1.0"
