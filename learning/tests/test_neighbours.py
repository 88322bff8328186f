"""What learning keeps of its neighbours' answers, and for how long."""

from __future__ import annotations

from devtools.helpers import TEST_INTERNAL_KEY
from learning.adapters.upstreams import CoursesClient, EnrolmentsClient


def clients(fake_neighbours_server):
    _, server = fake_neighbours_server
    options = {"internal_key": TEST_INTERNAL_KEY, "timeout": 2.0, "cache_seconds": 60.0}
    return CoursesClient(server.url, **options), EnrolmentsClient(server.url, **options)


def test_a_draft_is_asked_again_so_publishing_shows_at_once(neighbours, fake_neighbours_server):
    courses, _ = clients(fake_neighbours_server)
    neighbours.add_course(1, status="draft")
    assert courses.get(1).status == "draft"
    neighbours.add_course(1, status="published")
    assert courses.get(1).status == "published"
    neighbours.add_course(1, status="archived")
    # A published course may be a minute old here: archived courses stay readable anyway.
    assert courses.get(1).status == "published"
    assert neighbours.calls["/internal/courses/1"] == 2


def test_a_refused_access_is_asked_again_so_paying_lets_in_at_once(
    neighbours, fake_neighbours_server
):
    _, enrolments = clients(fake_neighbours_server)
    neighbours.enrol("learner-1", 1, paid=False)
    assert enrolments.access("learner-1", 1) is None
    neighbours.enrol("learner-1", 1, paid=True)
    assert enrolments.access("learner-1", 1) is not None
    assert enrolments.access("learner-1", 1) is not None
    assert neighbours.calls["/internal/enrolments/access"] == 2
