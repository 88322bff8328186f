from __future__ import annotations

from common.settings import BaseServiceSettings


class LearningSettings(BaseServiceSettings):
    database_url: str = "sqlite:///var/learning.db"
    db_pool_size: int = 10
    courses_url: str = "http://127.0.0.1:8082"
    enrolments_url: str = "http://127.0.0.1:8083"
    upstream_timeout: float = 5.0
    # Stored uploads live here, under names the server makes up.
    media_dir: str = "var/media"
    media_max_bytes: int = 20 * 1024 * 1024
    # How long a course's author/status and a learner's access are taken as known.
    # Short: a cancelled enrolment or an archived course is seen within this time.
    access_cache_seconds: float = 5.0
