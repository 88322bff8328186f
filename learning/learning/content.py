"""Modules, lessons, media and the public outline: written by staff, read by learners."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from common.identity import Caller
from contracts.learning import (
    LessonCreate,
    LessonOut,
    MediaLink,
    MediaOut,
    ModuleCreate,
    ModuleList,
    ModuleOut,
    Outline,
    OutlineLesson,
    OutlineModule,
)
from learning.adapters.tables import LessonRecord, MediaRecord, ModuleRecord
from learning.domain import CourseNotFound, MediaNotFound, UnsupportedMedia, sniff
from learning.service_base import ServiceBase, log

MEDIA_ROUTE = "/api/media/{id}"


def module_out(record: ModuleRecord) -> ModuleOut:
    return ModuleOut.model_validate(record, from_attributes=True)


def media_out(record: MediaRecord) -> MediaOut:
    url = record.url if record.kind == "link" else MEDIA_ROUTE.format(id=record.id)
    return MediaOut(
        id=record.id,
        lesson_id=record.lesson_id,
        kind=record.kind,
        media_type=record.media_type,
        title=record.title,
        url=url or "",
        content_type=record.content_type,
        size_bytes=record.size_bytes,
        position=record.position,
    )


class Content(ServiceBase):
    # ------------------------------------------------------------------ modules

    def list_modules(self, caller: Caller, course_id: int) -> ModuleList:
        role = self.reader_role(caller, course_id)
        modules = self.content.modules(course_id)
        if role == "learner":
            modules = [module for module in modules if module.published]
        return ModuleList(modules=[module_out(module) for module in modules])

    def create_module(self, caller: Caller, course_id: int, body: ModuleCreate) -> ModuleOut:
        self.require_staff(caller, course_id)
        return module_out(self.content.add_module(course_id, body.model_dump()))

    def update_module(self, caller: Caller, module_id: int, changes: dict[str, Any]) -> ModuleOut:
        self._staff_module(caller, module_id)
        return module_out(self.content.update_module(module_id, changes))

    def delete_module(self, caller: Caller, module_id: int) -> None:
        self._staff_module(caller, module_id)
        self._remove_files(self.content.delete_module(module_id))

    def order_modules(self, caller: Caller, course_id: int, ids: list[int]) -> ModuleList:
        self.require_staff(caller, course_id)
        ordered = self.content.order_modules(course_id, ids)
        return ModuleList(modules=[module_out(module) for module in ordered])

    def _staff_module(self, caller: Caller, module_id: int) -> ModuleRecord:
        module = self.content.module(module_id)
        self.require_staff(caller, module.course_id)
        return module

    # ------------------------------------------------------------------ lessons

    def create_lesson(self, caller: Caller, module_id: int, body: LessonCreate) -> LessonOut:
        module = self._staff_module(caller, module_id)
        return self.lesson_out(self.content.add_lesson(module, body.model_dump()))

    def get_lesson(self, caller: Caller, lesson_id: int) -> LessonOut:
        lesson, _ = self.visible_lesson(caller, lesson_id)
        return self.lesson_out(lesson)

    def update_lesson(self, caller: Caller, lesson_id: int, changes: dict[str, Any]) -> LessonOut:
        self._staff_lesson(caller, lesson_id)
        return self.lesson_out(self.content.update_lesson(lesson_id, changes))

    def delete_lesson(self, caller: Caller, lesson_id: int) -> None:
        self._staff_lesson(caller, lesson_id)
        self._remove_files(self.content.delete_lesson(lesson_id))

    def order_lessons(self, caller: Caller, module_id: int, ids: list[int]) -> list[LessonOut]:
        self._staff_module(caller, module_id)
        return [self.lesson_out(lesson) for lesson in self.content.order_lessons(module_id, ids)]

    def _staff_lesson(self, caller: Caller, lesson_id: int) -> LessonRecord:
        lesson = self.content.lesson(lesson_id)
        self.require_staff(caller, lesson.course_id)
        return lesson

    def lesson_out(self, lesson: LessonRecord) -> LessonOut:
        test_ids = self.content.test_ids([lesson.id]) if lesson.lesson_type == "test" else {}
        return LessonOut(
            id=lesson.id,
            module_id=lesson.module_id,
            course_id=lesson.course_id,
            title=lesson.title,
            lesson_type=lesson.lesson_type,
            content=lesson.content,
            position=lesson.position,
            published=lesson.published,
            estimated_minutes=lesson.estimated_minutes,
            media=[media_out(media) for media in lesson.media],
            test_id=test_ids.get(lesson.id),
        )

    # ------------------------------------------------------------------ media

    def add_media_link(self, caller: Caller, lesson_id: int, link: MediaLink) -> MediaOut:
        self._staff_lesson(caller, lesson_id)
        record = self.content.add_media(
            lesson_id,
            {"kind": "link", "media_type": link.media_type, "title": link.title, "url": link.url},
        )
        return media_out(record)

    def add_media_file(
        self,
        caller: Caller,
        lesson_id: int,
        stream: IO[bytes],
        *,
        title: str,
        media_type: str | None,
    ) -> MediaOut:
        """Store an upload that its first bytes show to be a PDF, PNG, JPEG, MP3 or MP4."""
        self._staff_lesson(caller, lesson_id)
        head = stream.read(16)
        kind = sniff(head)
        if kind is None or (media_type is not None and media_type != kind[0]):
            raise UnsupportedMedia()
        stream.seek(0)
        key, size = self.storage.save(stream, self.media_max_bytes)
        try:
            record = self.content.add_media(
                lesson_id,
                {
                    "kind": "file",
                    "media_type": kind[0],
                    "title": title,
                    "storage_key": key,
                    "content_type": kind[1],
                    "size_bytes": size,
                },
            )
        except BaseException:
            self.storage.delete(key)
            raise
        return media_out(record)

    def media_for_download(self, caller: Caller, media_id: int) -> tuple[MediaRecord, Path | None]:
        """The media and, for a stored file, where it is; only for those who may read the lesson."""
        media = self.content.media(media_id)
        self.visible_lesson(caller, media.lesson_id)
        if media.storage_key is None:
            return media, None
        path = self.storage.path(media.storage_key)
        if not path.is_file():
            raise MediaNotFound()
        return media, path

    def delete_media(self, caller: Caller, media_id: int) -> None:
        media = self.content.media(media_id)
        self._staff_lesson(caller, media.lesson_id)
        key = self.content.delete_media(media_id)
        self._remove_files([key] if key else [])

    def _remove_files(self, keys: list[str]) -> None:
        # After the commit: a file without a row is garbage, a row without its file a 404.
        for key in keys:
            try:
                self.storage.delete(key)
            except OSError as exc:
                log.warning("media_delete_failed", extra={"error": type(exc).__name__})

    # ------------------------------------------------------------------ outline

    def outline(self, caller: Caller | None, course_id: int) -> Outline:
        """What a catalogue page shows before anyone buys: titles, types, durations."""
        course = self.courses.get(course_id)
        staff = self._is_staff(caller, course)
        if course.status == "draft" and not staff:
            raise CourseNotFound()
        modules, lessons = self.content.outline(course_id)
        by_module: dict[int, list[OutlineLesson]] = {}
        for lesson in lessons:
            if staff or lesson.published:
                by_module.setdefault(lesson.module_id, []).append(
                    OutlineLesson.model_validate(lesson, from_attributes=True)
                )
        return Outline(
            course_id=course_id,
            modules=[
                OutlineModule(
                    id=module.id,
                    title=module.title,
                    position=module.position,
                    lessons=by_module.get(module.id, []),
                )
                for module in modules
                if staff or module.published
            ],
        )
