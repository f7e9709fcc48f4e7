"""The gateway's domain: accounts, workspaces, permissions, apps, keys, runs as seen by
users, conversations, files, limits and audit. Imports no FastAPI, grpc, FastStream or protobuf.
"""
