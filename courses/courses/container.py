from __future__ import annotations

from dependency_injector import containers, providers

from common.db import Database
from courses.adapters.repository import CourseRepository
from courses.service import CourseService
from courses.settings import CoursesSettings


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=CoursesSettings)
    database = providers.Singleton(
        Database, url=settings.provided.database_url, pool_size=settings.provided.db_pool_size
    )
    course_repository = providers.Singleton(CourseRepository, database=database)
    course_service = providers.Singleton(CourseService, repository=course_repository)
