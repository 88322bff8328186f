"""Learning service: course content, tests graded on the server, learner progress."""

from learning.app import create_app

__all__ = ["create_app"]
