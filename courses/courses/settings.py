from __future__ import annotations

from common.settings import BaseServiceSettings


class CoursesSettings(BaseServiceSettings):
    database_url: str = "sqlite:///var/courses.db"
    db_pool_size: int = 10
