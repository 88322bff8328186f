"""The learning service's business rules: no Flask, no sessions.

:class:`LearningService` is composed of one part per seam — who may do what
(``service_base``), content (``content``), progress (``progress``) and tests with
their attempts (``quizzes``) — so each stays small.
"""

from __future__ import annotations

from learning.quizzes import Quizzes


class LearningService(Quizzes):
    pass


__all__ = ["LearningService"]
