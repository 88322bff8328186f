"""HTTP layer of content and progress: parse, call the service, serialise."""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file
from pydantic import TypeAdapter

from common.errors import ApiError
from common.identity import current_caller, require_caller
from common.validation import parse_body, parse_query
from contracts.learning import (
    LessonCreate,
    LessonList,
    LessonUpdate,
    MediaLink,
    MediaType,
    ModuleCreate,
    ModuleUpdate,
    Ordering,
    PageQuery,
    Title,
)
from learning.content import media_out
from learning.http.common import answer, service

blueprint = Blueprint("learning_content", __name__)
_UPLOAD_FIELDS = TypeAdapter(dict[str, str])
_TITLE = TypeAdapter(Title)
_MEDIA_TYPE = TypeAdapter(MediaType | None)
# Multipart framing around the file itself.
_MULTIPART_OVERHEAD = 64 * 1024


@blueprint.get("/courses/<int:course_id>/modules")
def list_modules(course_id: int) -> tuple[Response, int]:
    return answer(service().list_modules(require_caller(), course_id))


@blueprint.post("/courses/<int:course_id>/modules")
def create_module(course_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return answer(service().create_module(caller, course_id, parse_body(ModuleCreate)), 201)


@blueprint.put("/courses/<int:course_id>/modules/order")
def order_modules(course_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return answer(service().order_modules(caller, course_id, parse_body(Ordering).ids))


@blueprint.patch("/modules/<int:module_id>")
def update_module(module_id: int) -> tuple[Response, int]:
    caller = require_caller()
    changes = parse_body(ModuleUpdate).model_dump(exclude_unset=True, exclude_none=True)
    return answer(service().update_module(caller, module_id, changes))


@blueprint.delete("/modules/<int:module_id>")
def delete_module(module_id: int) -> tuple[str, int]:
    service().delete_module(require_caller(), module_id)
    return "", 204


@blueprint.post("/modules/<int:module_id>/lessons")
def create_lesson(module_id: int) -> tuple[Response, int]:
    caller = require_caller()
    return answer(service().create_lesson(caller, module_id, parse_body(LessonCreate)), 201)


@blueprint.put("/modules/<int:module_id>/lessons/order")
def order_lessons(module_id: int) -> tuple[Response, int]:
    caller = require_caller()
    lessons = service().order_lessons(caller, module_id, parse_body(Ordering).ids)
    return answer(LessonList(lessons=lessons))


@blueprint.get("/lessons/<int:lesson_id>")
def get_lesson(lesson_id: int) -> tuple[Response, int]:
    return answer(service().get_lesson(require_caller(), lesson_id))


@blueprint.patch("/lessons/<int:lesson_id>")
def update_lesson(lesson_id: int) -> tuple[Response, int]:
    caller = require_caller()
    changes = parse_body(LessonUpdate).model_dump(exclude_unset=True)
    return answer(service().update_lesson(caller, lesson_id, changes))


@blueprint.delete("/lessons/<int:lesson_id>")
def delete_lesson(lesson_id: int) -> tuple[str, int]:
    service().delete_lesson(require_caller(), lesson_id)
    return "", 204


@blueprint.post("/lessons/<int:lesson_id>/media")
def add_media(lesson_id: int) -> tuple[Response, int]:
    caller = require_caller()
    if request.mimetype != "multipart/form-data":
        return answer(service().add_media_link(caller, lesson_id, parse_body(MediaLink)), 201)
    request.max_content_length = service().media_max_bytes + _MULTIPART_OVERHEAD
    upload = request.files.get("file")
    if upload is None:
        raise ApiError("Send the file in a part named file.", code="validation_error")
    fields = _UPLOAD_FIELDS.validate_python(request.form.to_dict())
    extra = set(fields) - {"title", "media_type"}
    if extra:
        raise ApiError("Only title and media_type may come with the file.", code="validation_error")
    media = service().add_media_file(
        caller,
        lesson_id,
        upload.stream,
        title=_TITLE.validate_python(fields.get("title") or upload.filename or "file"),
        media_type=_MEDIA_TYPE.validate_python(fields.get("media_type")),
    )
    return answer(media, 201)


@blueprint.get("/media/<int:media_id>")
def download_media(media_id: int) -> Response | tuple[Response, int]:
    media, path = service().media_for_download(require_caller(), media_id)
    if path is None:
        return answer(media_out(media))
    response = send_file(
        path,
        mimetype=media.content_type,
        as_attachment=media.media_type == "pdf",
        download_name=f"media-{media.id}",
        conditional=False,
        etag=False,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blueprint.delete("/media/<int:media_id>")
def delete_media(media_id: int) -> tuple[str, int]:
    service().delete_media(require_caller(), media_id)
    return "", 204


@blueprint.get("/courses/<int:course_id>/outline")
def outline(course_id: int) -> tuple[Response, int]:
    return answer(service().outline(current_caller(), course_id))


@blueprint.put("/lessons/<int:lesson_id>/completion")
def complete_lesson(lesson_id: int) -> tuple[Response, int]:
    return answer(service().complete_lesson(require_caller(), lesson_id))


@blueprint.delete("/lessons/<int:lesson_id>/completion")
def uncomplete_lesson(lesson_id: int) -> tuple[Response, int]:
    return answer(service().uncomplete_lesson(require_caller(), lesson_id))


@blueprint.get("/courses/<int:course_id>/progress")
def course_progress(course_id: int) -> tuple[Response, int]:
    return answer(service().course_progress(require_caller(), course_id))


@blueprint.get("/progress")
def my_progress() -> tuple[Response, int]:
    query = parse_query(PageQuery)
    return answer(service().my_progress(require_caller(), query.page, query.per_page))


@blueprint.get("/courses/<int:course_id>/progress/learners")
def learners(course_id: int) -> tuple[Response, int]:
    query = parse_query(PageQuery)
    return answer(service().learners(require_caller(), course_id, query.page, query.per_page))
