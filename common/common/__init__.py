"""Cross-cutting chassis shared by every Course Platform service.

Settings, the JSON error envelope, request-body parsing, request-id logging,
health checks, the pooled HTTP client and the SQLAlchemy helper live here once.
"""
