from __future__ import annotations

from dependency_injector import containers, providers

from common.db import Database
from learning.adapters.content import ContentRepository
from learning.adapters.progress import ProgressRepository
from learning.adapters.quizzes import QuizRepository
from learning.adapters.storage import DirectoryStorage
from learning.adapters.upstreams import CoursesClient, EnrolmentsClient
from learning.service import LearningService
from learning.settings import LearningSettings


def _key(settings: LearningSettings) -> str:
    return settings.internal_api_key.get_secret_value()


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=LearningSettings)
    database = providers.Singleton(
        Database, url=settings.provided.database_url, pool_size=settings.provided.db_pool_size
    )
    content = providers.Singleton(ContentRepository, database=database)
    quizzes = providers.Singleton(QuizRepository, database=database)
    progress = providers.Singleton(ProgressRepository, database=database)
    courses = providers.Singleton(
        CoursesClient,
        settings.provided.courses_url,
        internal_key=providers.Callable(_key, settings),
        timeout=settings.provided.upstream_timeout,
        cache_seconds=settings.provided.access_cache_seconds,
    )
    enrolments = providers.Singleton(
        EnrolmentsClient,
        settings.provided.enrolments_url,
        internal_key=providers.Callable(_key, settings),
        timeout=settings.provided.upstream_timeout,
        cache_seconds=settings.provided.access_cache_seconds,
    )
    storage = providers.Singleton(DirectoryStorage, settings.provided.media_dir)
    service = providers.Singleton(
        LearningService,
        content=content,
        quizzes=quizzes,
        progress=progress,
        courses=courses,
        enrolments=enrolments,
        storage=storage,
        media_max_bytes=settings.provided.media_max_bytes,
    )
