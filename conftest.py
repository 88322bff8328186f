# Each service ships its fixtures as a pytest plugin next to its code, so any
# test tier (service, gateway, end-to-end) can start any service.
pytest_plugins = [
    "courses.testing",
    "enrolments.testing",
    "gateway.testing",
    "learning.testing",
    "users.testing",
]
