"""The container deployment, checked without a Docker engine.

No engine runs on the CI machine, so these tests read docker-compose.yml, .env.example and
the Dockerfiles and assert what `docker compose up --build` relies on; the nginx template is
rendered (both ways: the local runner's and the container entrypoint's) and checked by
`nginx -t`.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.settings import secret_problem
from devtools.devservers import ServerError, find_binary, render_nginx_config

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_PATH = ROOT / "docker-compose.yml"
ENV_EXAMPLE_PATH = ROOT / ".env.example"
NGINX_TEMPLATE = ROOT / "nginx" / "nginx.conf.template"
NGINX_ENTRYPOINT = ROOT / "nginx" / "render-and-run.sh"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_PATH.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

PYTHON_SERVICES = {"gateway", "users", "courses", "enrolments", "enrolments-worker", "learning"}
DATA_STORES = {"mongo", "courses-db", "enrolments-db", "learning-db", "redis"}
MIGRATIONS = {
    "courses-migrate": "courses",
    "enrolments-migrate": "enrolments",
    "learning-migrate": "learning",
}
# SQL service → its database and its migration job.
SQL_SERVICES = {
    "courses": ("courses-db", "courses-migrate"),
    "enrolments": ("enrolments-db", "enrolments-migrate"),
    "enrolments-worker": ("enrolments-db", "enrolments-migrate"),
    "learning": ("learning-db", "learning-migrate"),
}
EXPECTED_SERVICES = {"nginx", *PYTHON_SERVICES, *DATA_STORES, *MIGRATIONS}

# A variable holding a secret (ACCESS_TOKEN_MINUTES is a duration, not a token).
SECRET_NAME = re.compile(r"(SECRET|KEY|PASSWORD|PASSWD|TOKEN|AUTH)$", re.IGNORECASE)
# Dockerfiles are stricter: no ENV/ARG even mentioning one may carry a value.
BAKED_SECRET_NAME = re.compile(r"SECRET|KEY|PASSWORD|PASSWD|TOKEN", re.IGNORECASE)
REQUIRED_REFERENCE = re.compile(r"\$\{[A-Z0-9_]+:\?[^}]*\}")
# ${VAR}, ${VAR:-default}, ${VAR:?message}, $VAR — `$$` is compose's escape of a literal `$`.
VAR_REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|([A-Za-z_][A-Za-z0-9_]*))")

# Image (Dockerfile dir) → the local packages it installs and the app factory gunicorn serves.
PYTHON_IMAGES = {
    "api-gateway": ({"common", "contracts", "api-gateway"}, "gateway"),
    "users": ({"common", "contracts", "users"}, "users"),
    "courses": ({"common", "contracts", "courses"}, "courses"),
    "enrolments": ({"common", "contracts", "enrolments"}, "enrolments"),
    "learning": ({"common", "contracts", "learning"}, "learning"),
    "fakturownia-sandbox": ({"fakturownia-sandbox"}, "fakturownia_sandbox"),
}
DOCKERFILES = sorted(ROOT.glob("*/Dockerfile"))

# Settings class of each compose service: every field must be set by compose, except
# these (fixed by the code path, or development-only seeding — compose bootstraps the
# admin with `flask --app users create-admin` instead).
SETTINGS_CLASSES = {
    "gateway": "gateway.settings:GatewaySettings",
    "users": "users.settings:UsersSettings",
    "courses": "courses.settings:CoursesSettings",
    "courses-migrate": "courses.settings:CoursesSettings",
    "enrolments": "enrolments.settings:EnrolmentsSettings",
    "enrolments-migrate": "enrolments.settings:EnrolmentsSettings",
    "enrolments-worker": "enrolments.settings:EnrolmentsSettings",
    "learning": "learning.settings:LearningSettings",
    "learning-migrate": "learning.settings:LearningSettings",
}
MAIL_SERVICES = {"users", "enrolments", "enrolments-migrate", "enrolments-worker"}
NOT_FROM_COMPOSE = {"admin_email", "admin_username", "admin_password", "mail"}


# ----------------------------------------------------------------------------- helpers


def one_shot_jobs() -> set[str]:
    """Services others wait for with `service_completed_successfully`."""
    jobs = set()
    for service in SERVICES.values():
        for name, spec in depends_on(service).items():
            if spec.get("condition") == "service_completed_successfully":
                jobs.add(name)
    return jobs


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):  # short syntax: no condition at all
        return {name: {} for name in deps}
    return dict(deps)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for value in node.values() for text in strings(value)]
    if isinstance(node, list):
        return [text for value in node for text in strings(value)]
    return [node] if isinstance(node, str) else []


def compose_variables() -> set[str]:
    """Every variable compose interpolates (in values; comments are not interpolated)."""
    text = "\n".join(strings(COMPOSE)).replace("$$", "")
    return {braced or bare for braced, bare in VAR_REFERENCE.findall(text)}


def env_example() -> dict[str, str]:
    """Documented variables: `NAME=value` lines, and `#NAME=default` optional knobs."""
    values = {}
    for line in ENV_EXAMPLE_PATH.read_text().splitlines():
        match = re.fullmatch(r"#?([A-Z][A-Z0-9_]*)=(.*)", line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def env_assignments(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:  # legacy `ENV NAME value`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def settings_fields(dotted: str) -> dict[str, Any]:
    module_name, class_name = dotted.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return dict(cls.model_fields)


# ----------------------------------------------------------------------------- compose


def test_expected_services_exist() -> None:
    missing = EXPECTED_SERVICES - set(SERVICES)
    assert not missing, f"docker-compose.yml lacks {sorted(missing)}"


def test_every_service_has_a_healthcheck_or_is_a_one_shot_job() -> None:
    jobs = one_shot_jobs()
    assert set(MIGRATIONS) <= jobs
    for name, service in SERVICES.items():
        if name in jobs:
            assert service.get("restart", "no") == "no", f"{name} is one-shot, not restarted"
            continue
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        assert check.get("test"), f"{name}: healthcheck without a test"


def test_python_services_probe_their_readiness_endpoint() -> None:
    for name in PYTHON_SERVICES - {"enrolments-worker"}:
        test = " ".join(SERVICES[name]["healthcheck"]["test"])
        assert "urllib.request" in test, name
        assert "/health/ready" in test, name
    assert "mysqladmin ping" in " ".join(SERVICES["courses-db"]["healthcheck"]["test"])
    assert "mysqladmin ping" in " ".join(SERVICES["enrolments-db"]["healthcheck"]["test"])
    # MariaDB's image ships its own probe instead of mysqladmin.
    assert "healthcheck.sh --connect" in " ".join(SERVICES["learning-db"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(SERVICES["redis"]["healthcheck"]["test"])
    assert "mongosh" in " ".join(SERVICES["mongo"]["healthcheck"]["test"])


def test_only_nginx_publishes_a_port() -> None:
    publishing = {name for name, service in SERVICES.items() if service.get("ports")}
    assert publishing == {"nginx"}
    assert SERVICES["nginx"]["ports"] == ["${HTTP_PORT:-8080}:8080"]
    for name, service in SERVICES.items():
        assert service.get("network_mode") != "host", name


def test_data_stores_publish_nothing_and_stay_on_the_internal_network() -> None:
    networks = COMPOSE["networks"]
    for name in DATA_STORES:
        service = SERVICES[name]
        assert "ports" not in service, name
        assert "expose" not in service, name
        for network in service.get("networks", ["default"]):
            assert networks.get(network, {}).get("internal") is True, f"{name} on {network}"


def test_every_python_service_is_on_the_internal_network() -> None:
    assert COMPOSE["networks"]["backend"]["internal"] is True
    for name in PYTHON_SERVICES | set(MIGRATIONS) | {"nginx"}:
        assert "backend" in SERVICES[name].get("networks", []), name


def test_migrations_run_once_before_the_sql_services() -> None:
    for job, package in MIGRATIONS.items():
        assert SERVICES[job]["command"] == ["flask", "--app", package, "db", "upgrade"]
    for name, (database, job) in SQL_SERVICES.items():
        deps = depends_on(SERVICES[name])
        assert deps[job]["condition"] == "service_completed_successfully", name
        assert deps[database]["condition"] == "service_healthy", name
        assert depends_on(SERVICES[job])[database]["condition"] == "service_healthy", job
        # Same image and configuration as the service it migrates.
        assert SERVICES[job]["build"] == SERVICES[name]["build"], job
        assert environment(SERVICES[job]) == environment(SERVICES[name]), job


def test_web_containers_leave_the_background_work_to_the_worker() -> None:
    assert SERVICES["enrolments-worker"]["command"] == [
        "flask",
        "--app",
        "enrolments",
        "invoice-worker",
    ]
    assert environment(SERVICES["enrolments"])["RUN_WORKERS"] == "false"


def test_dependencies_wait_for_health() -> None:
    jobs = one_shot_jobs()
    for name, service in SERVICES.items():
        for dependency, spec in depends_on(service).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            expected = "service_completed_successfully" if dependency in jobs else "service_healthy"
            assert spec.get("condition") == expected, f"{name} → {dependency}"
    assert "gateway" in depends_on(SERVICES["nginx"])


def test_builds_use_the_repository_root_and_existing_dockerfiles() -> None:
    for name, service in SERVICES.items():
        build = service.get("build")
        if build is None:
            assert name in DATA_STORES, f"{name} is neither built nor a data store"
            continue
        assert build["context"] == ".", name
        assert (ROOT / build["dockerfile"]).is_file(), name


def test_every_referenced_variable_is_documented_in_env_example() -> None:
    documented = env_example()
    assert {"INTERNAL_API_KEY", "JWT_SECRET_KEY", "HTTP_PORT"} <= compose_variables()
    undocumented = compose_variables() - set(documented)
    assert not undocumented, f".env.example does not document {sorted(undocumented)}"
    lines = ENV_EXAMPLE_PATH.read_text().splitlines()
    for index, line in enumerate(lines):
        if re.fullmatch(r"#?[A-Z][A-Z0-9_]*=.*", line.strip()):
            assert lines[index - 1].startswith("# "), f"no comment above {line!r}"


def test_env_example_documents_nothing_compose_ignores() -> None:
    compose_own = {"COMPOSE_PROFILES"}  # read by docker compose itself
    unused = set(env_example()) - compose_variables() - compose_own
    assert not unused, f".env.example documents unused {sorted(unused)}"


def test_env_example_holds_placeholders_only() -> None:
    for name, value in env_example().items():
        if not SECRET_NAME.search(name):
            continue
        assert value == "" or "change-me" in value, f"{name} looks like a real secret"
        if value:
            # The services themselves refuse to start with it.
            assert secret_problem(value) is not None, name


def test_secrets_reach_containers_only_from_env() -> None:
    """A secret in compose is a required `${VAR:?...}` reference, never a literal."""
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key) and key != "MAIL_PASSWORD":
                assert REQUIRED_REFERENCE.fullmatch(value), f"{name}: {key}"
            if "://" in value and "@" in value:  # user:password@ inside a connection URL
                credentials = re.search(r"://(?:\$\{[^}]*\}|[^:@/]*):(.*)@", value)
                assert credentials, f"{name}: {key} has a user but no password reference"
                assert REQUIRED_REFERENCE.fullmatch(credentials.group(1)), f"{name}: {key}"
    assert environment(SERVICES["users"])["MAIL_PASSWORD"] == "${MAIL_PASSWORD:-}"


@pytest.mark.parametrize("service", sorted(SETTINGS_CLASSES))
def test_compose_sets_every_settings_field(service: str) -> None:
    env = environment(SERVICES[service])
    fields = settings_fields(SETTINGS_CLASSES[service])
    missing = {name.upper() for name in fields if name not in NOT_FROM_COMPOSE} - set(env)
    if service in MAIL_SERVICES:
        mail = settings_fields("common.mail:MailSettings")
        missing |= {f"MAIL_{name.upper()}" for name in mail} - set(env)
    assert not missing, f"{service}: docker-compose.yml does not set {sorted(missing)}"
    assert env["ENVIRONMENT"] == "production"


# ----------------------------------------------------------------------------- Dockerfiles


def test_every_image_has_a_dockerfile() -> None:
    names = {path.parent.name for path in DOCKERFILES}
    assert set(PYTHON_IMAGES) | {"nginx"} <= names
    assert (ROOT / ".dockerignore").is_file()
    ignored = (ROOT / ".dockerignore").read_text().split()
    for pattern in (".git", ".venv", "var", "**/tests", "**/__pycache__", ".env"):
        assert pattern in ignored, pattern


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfile_lint(path: Path) -> None:
    instructions = dockerfile_instructions(path)
    keywords = [keyword for keyword, _ in instructions]

    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}, "the final USER is root"

    healthchecks = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert healthchecks, "no HEALTHCHECK"
    assert healthchecks[-1].split()[0].upper() != "NONE", "HEALTHCHECK NONE"

    for keyword, args in instructions:
        if keyword in {"ENV", "ARG"}:
            for name, value in env_assignments(args).items():
                baked = BAKED_SECRET_NAME.search(name) and value
                assert not baked, f"{keyword} {name} bakes a secret into the image"
    assert "ADD" not in keywords, "use COPY"


@pytest.mark.parametrize("image", sorted(PYTHON_IMAGES))
def test_python_images(image: str) -> None:
    path = ROOT / image / "Dockerfile"
    instructions = dockerfile_instructions(path)
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(bases) >= 2, "multi-stage: build the virtualenv apart from the runtime"
    for base in bases:
        match = re.fullmatch(r"python:3\.(\d+)-slim(-[a-z]+)?", base)
        assert match, f"{base} is not a python:3.x-slim image"
        assert int(match.group(1)) >= 11, f"{base} is older than Python 3.11"

    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any("pip install -r requirements.txt" in run for run in runs), "pinned requirements"
    packages, module = PYTHON_IMAGES[image]
    local = [run for run in runs if "--no-deps" in run]
    assert len(local) == 1
    installed = {word.removeprefix("./") for word in local[0].split() if word.startswith("./")}
    assert installed == packages
    copied = {
        args.split()[0].rstrip("/") for keyword, args in instructions if keyword == "COPY"
    } - {"--from=build"}
    # An image holds only what it runs: never the dev tooling, never another service.
    assert copied == packages | {"requirements.txt"}

    cmd = " ".join(args for keyword, args in instructions if keyword == "CMD")
    assert "gunicorn" in cmd
    assert "-k gthread" in cmd
    assert f"{module}:create_app()" in cmd
    healthcheck = " ".join(args for keyword, args in instructions if keyword == "HEALTHCHECK")
    assert "urllib.request" in healthcheck
    assert "/health" in healthcheck


# ----------------------------------------------------------------------------- nginx


def template_variables() -> set[str]:
    """The template's ${NAME}s, without the `${VARS}` of its own header comment."""
    return set(re.findall(r"\$\{([A-Z_]+)\}", NGINX_TEMPLATE.read_text())) - {"VARS"}


def nginx_accepts(config: Path, prefix: Path) -> None:
    result = subprocess.run(
        [find_binary("nginx"), "-t", "-e", "stderr", "-p", str(prefix), "-c", str(config)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_nginx_template_renders_and_nginx_accepts_it(tmp_path: Path) -> None:
    config = render_nginx_config(
        listen="127.0.0.1:18080", gateway="127.0.0.1:18081", workdir=tmp_path
    )
    text = config.read_text()
    for variable in template_variables():
        assert f"${{{variable}}}" not in text, variable
    nginx_accepts(config, tmp_path)


def fake_envsubst(directory: Path) -> None:
    """GNU envsubst with a SHELL-FORMAT: only the listed variables are replaced."""
    script = directory / "envsubst"
    script.write_text(
        f"#!{sys.executable}\n"
        "import os, re, sys\n"
        "names = set(re.findall(r'\\$\\{?([A-Za-z_][A-Za-z0-9_]*)', sys.argv[1]))\n"
        "def sub(m):\n"
        "    name = m.group(1) or m.group(2)\n"
        "    return os.environ.get(name, '') if name in names else m.group(0)\n"
        "pattern = r'\\$(?:\\{([A-Za-z_][A-Za-z0-9_]*)\\}|([A-Za-z_][A-Za-z0-9_]*))'\n"
        "sys.stdout.write(re.sub(pattern, sub, sys.stdin.read()))\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_container_entrypoint_renders_the_same_template(tmp_path: Path) -> None:
    """nginx/render-and-run.sh (the image's entrypoint) substitutes only our variables."""
    prefix = tmp_path / "nginx"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NGINX_TEMPLATE": str(NGINX_TEMPLATE),
        "NGINX_PREFIX": str(prefix),
        "NGINX_LISTEN": "127.0.0.1:18080",
        "GATEWAY_UPSTREAM": "127.0.0.1:18081",
        "NGINX_ACCESS_LOG": str(tmp_path / "access.log"),
        "NGINX_ERROR_LOG": str(tmp_path / "error.log"),
    }
    try:
        find_binary("envsubst")
    except ServerError:  # the nginx image has it; a minimal Debian may lack gettext-base
        shim = tmp_path / "bin"
        shim.mkdir()
        fake_envsubst(shim)
        env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    result = subprocess.run(
        ["sh", str(NGINX_ENTRYPOINT), "--render-only"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    config = Path(result.stdout.strip())
    assert config == prefix / "nginx.conf"
    text = config.read_text()
    for variable in template_variables():
        assert f"${{{variable}}}" not in text, variable
    assert "daemon off;" in text
    assert f"pid {prefix}/nginx.pid;" in text
    assert "listen 127.0.0.1:18080;" in text
    assert "server 127.0.0.1:18081;" in text
    # nginx's own variables survive the substitution.
    assert "$request_id" in text
    assert "$remote_addr" in text
    nginx_accepts(config, prefix)


def test_entrypoint_substitutes_exactly_the_template_variables() -> None:
    template_vars = template_variables()
    assert len(template_vars) == 8
    listed = re.search(r"envsubst '([^']*)'", NGINX_ENTRYPOINT.read_text())
    assert listed is not None
    assert set(re.findall(r"\$\{([A-Z_]+)\}", listed.group(1))) == template_vars


def location_directives(text: str, header: str) -> list[str]:
    """The directives of one `location … {` block of the template (comments dropped)."""
    start = text.index(header + " {")
    block = text[start + len(header) + 2 : text.index("}", start)]
    lines = (line.split("#", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line]


def test_only_the_media_upload_path_gets_a_larger_body_cap() -> None:
    text = NGINX_TEMPLATE.read_text()
    assert re.findall(r"client_max_body_size (\S+);", text) == ["1m", "21m"]
    api = location_directives(text, "location /api/")
    media = location_directives(text, "location ~ ^/api/lessons/[0-9]+/media/?$")
    # Proxied exactly like every other /api/ path, the cap aside.
    assert media == ["client_max_body_size 21m;", *api]
