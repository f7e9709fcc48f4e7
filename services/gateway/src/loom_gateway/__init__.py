"""loom-gateway: HTTP for apps and the console: Dify- and OpenAI-compatible APIs, auth,
workspaces, SSE from run events.
"""

__version__ = "0.1.0"
