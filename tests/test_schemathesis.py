"""Every operation of the OpenAPI, fuzzed by schemathesis against a live hub over
loopback, as the platform admin and without credentials: no 5xx, and every documented
response conforms to its schema.

Bounded to finish in about a minute on two cores: a fixed seed (derandomized), a few
examples per operation and generation mode, no shrinking (the first failing example of
each operation is reported, with the request that produced it). A dedicated hub per
database, so what the fuzzer creates stays out of the other tests' way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import make_settings, migrated
from tests.factories import PASSWORD, World
from tests.live import LiveHub, start_live_hub
from tests.pg import PostgresServer

EXAMPLES = 4
CHECKS = [not_a_server_error, response_schema_conformance]
# The admin pass must not sign itself out half-way.
ADMIN_SKIPS = {("POST", "/api/v1/auth/revoke")}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fuzz_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveHub]:
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.create_database("govshare_fuzz")
    settings = migrated(make_settings(tmp_path_factory.mktemp(f"fuzz-{request.param}"), url))
    live = start_live_hub(settings)
    yield live
    live.stop()


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    calls: int = 0


def _fuzz(hub: LiveHub, headers: dict[str, str], skips: set[tuple[str, str]]) -> Findings:
    spec = requests.get(f"{hub.base_url}/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(spec)
    found = Findings()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in skips:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                problem = _fuzz_operation(hub, session, headers, operation, mode, found)
                if problem:
                    found.problems.append(problem)
                    break
    return found


def _fuzz_operation(
    hub: LiveHub,
    session: requests.Session,
    headers: dict[str, str],
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    found: Findings,
) -> str | None:
    """The first failing example of ``operation`` in ``mode``, described, or None."""
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        if failures:
            return
        response = case.call(base_url=hub.base_url, session=session, headers=headers, timeout=60)
        found.calls += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (AssertionError, FailureGroup) as exc:  # collected, the run goes on
            failures.append(
                f"{operation.label} [{mode.value}] -> {response.status_code}: "
                f"{str(exc)[:800]}\n    {case.as_curl_command()[:600]}"
            )

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid in this operation
        return None
    return failures[0] if failures else None


def test_fuzz_as_admin(fuzz_hub: LiveHub) -> None:
    world = World(fuzz_hub)
    token = fuzz_hub.token(world.admin, PASSWORD)
    found = _fuzz(fuzz_hub, {"Authorization": f"Bearer {token}"}, ADMIN_SKIPS)
    assert found.calls > 300
    assert not found.problems, "\n".join(found.problems)


def test_fuzz_without_credentials(fuzz_hub: LiveHub) -> None:
    found = _fuzz(fuzz_hub, {}, set())
    assert found.calls > 300
    assert not found.problems, "\n".join(found.problems)
