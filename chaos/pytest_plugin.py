"""pytest plugin (entry point ``chaos``): a Toxiproxy server and proxies for your own tests.

Installed with the package, so any suite can ask for:

- ``toxiproxy_server`` (session, sync): the server for the whole run, a
  :class:`~chaos.toxiproxy.control.ToxiproxyEndpoint` (``.url``, ``.embedded``, ``.version``).
  ``$TOXIPROXY_URL`` (full URL or ``host:port``) selects an external server, which must answer;
  otherwise the embedded server starts on a free loopback port and stops at the end.
- ``toxiproxy`` (function, async): a :class:`~chaos.toxiproxy.control.ToxiproxyControl` of that
  server, bound to the running test's event loop and closed after the test.
- ``toxiproxy_proxy`` (function, async factory): ``await toxiproxy_proxy(upstream="127.0.0.1:N")``
  creates a proxy on a free loopback port in front of ``upstream`` and returns its
  :class:`~chaos.toxiproxy.models.ProxyInfo`; every proxy it made is deleted after the test,
  whether the test passed or failed.
- ``chaos_scenario`` (function, async factory): ``result = await chaos_scenario("name",
  scale=0.5)`` runs a named scenario (built-in, registered by an installed package under the
  ``chaos.scenarios`` entry point group, or from ``scenarios_module=``) on that server, as
  ``chaos run`` does, and returns its :class:`~chaos.engine.ScenarioResult`:
  ``assert result.passed, result.summary()``, ``result.arm("guarded").verdict``.

It also registers the ``chaos`` and ``real_server`` markers. The async fixtures need
pytest-asyncio (auto or strict mode). Everything bound to an event loop is function-scoped, so
the fixtures work with pytest-asyncio's per-test loops.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from chaos.toxiproxy.control import ToxiproxyControl, ToxiproxyEndpoint, running_toxiproxy
from chaos.toxiproxy.errors import ProxyNotFound
from chaos.toxiproxy.models import ProxyInfo

if TYPE_CHECKING:  # the engine (numpy, the load generator) is imported when a scenario runs
    from chaos.engine import ScenarioResult

try:
    import pytest_asyncio as _pytest_asyncio
except ImportError:  # pragma: no cover - the sync fixture still works without it
    _pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_SCENARIO_RETRIES",
    "ProxyFactory",
    "ScenarioRunner",
    "chaos_scenario",
    "toxiproxy",
    "toxiproxy_proxy",
    "toxiproxy_server",
]

DEFAULT_SCENARIO_RETRIES = 4
"""How many times ``chaos_scenario`` runs an untrusted arm again unless told (as ``chaos
run``'s ``--retries``: a busy CI machine spoils an attempt now and then)."""

_F = TypeVar("_F", bound=Callable[..., Any])

_MARKERS = {
    "chaos": "the test injects network faults through a Toxiproxy server",
    "real_server": "the test needs a real server (redis-server, the proxy) started on loopback",
}


def pytest_configure(config: pytest.Config) -> None:
    registered = {
        str(line).split(":", 1)[0].split("(", 1)[0].strip() for line in config.getini("markers")
    }
    for name, help_text in _MARKERS.items():
        if name not in registered:
            config.addinivalue_line("markers", f"{name}: {help_text}")


class ProxyFactory:
    """Creates proxies for one test and deletes them all in :meth:`cleanup`.

    Proxy names default to ``<test name>-<n>-<random>``, unique even on a server shared with
    other runs.
    """

    def __init__(self, control: ToxiproxyControl, test_name: str) -> None:
        self.control = control
        self.created: list[str] = []
        self._prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)[:60] or "proxy"
        self._counter = itertools.count(1)

    async def __call__(
        self,
        upstream: str,
        name: str | None = None,
        *,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
    ) -> ProxyInfo:
        """Create a proxy in front of ``upstream``, listening on a free loopback port."""
        if name is None:
            name = f"{self._prefix}-{next(self._counter)}-{uuid.uuid4().hex[:6]}"
        proxy = await self.control.create_proxy(name, upstream, listen=listen, enabled=enabled)
        self.created.append(proxy.name)
        return proxy

    async def cleanup(self) -> None:
        """Delete every proxy this factory made (already deleted ones are fine)."""
        failures: list[BaseException] = []
        for name in reversed(self.created):
            try:
                await self.control.delete_proxy(name)
            except ProxyNotFound:
                pass
            except Exception as exc:
                failures.append(exc)
        self.created.clear()
        if failures:
            raise failures[0]


class ScenarioRunner:
    """Runs named scenarios on one Toxiproxy server, for one test (``chaos_scenario``)."""

    def __init__(self, control: ToxiproxyControl) -> None:
        self.control = control

    async def __call__(
        self,
        name: str,
        *,
        scale: float = 1.0,
        seed: int = 1,
        arms: Sequence[str] | None = None,
        retries: int = DEFAULT_SCENARIO_RETRIES,
        scenarios_module: str | Sequence[str] | None = None,
    ) -> ScenarioResult:
        """Run scenario ``name`` and judge its arms (all, or those in ``arms``).

        The scenario is found as ``chaos run`` finds it: the built-in ones (or those of
        ``scenarios_module``, a module name or several) and those installed packages register.
        Raises :class:`LookupError` for an unknown name, and
        :class:`~chaos.scenarios.ScenarioLoadError` or :class:`~chaos.scenario.ScenarioError`
        as ``chaos run`` would report them.
        """
        from chaos.engine import run_scenario
        from chaos.scenarios import discover_scenarios

        modules = [scenarios_module] if isinstance(scenarios_module, str) else scenarios_module
        scenarios = discover_scenarios(modules)
        if name not in scenarios:
            known = ", ".join(scenarios) or "none"
            raise LookupError(f"unknown scenario {name!r} (known: {known})")
        return await run_scenario(
            scenarios[name], self.control, seed=seed, scale=scale, arms=arms, retries=retries
        )


def _async_fixture(func: _F) -> _F:
    """``pytest_asyncio.fixture`` (works in auto and strict mode); without pytest-asyncio, a
    fixture that fails the test saying what is missing, instead of breaking every suite."""
    if _pytest_asyncio is None:
        name = func.__name__

        def needs_pytest_asyncio() -> None:
            pytest.fail(f"the `{name}` fixture needs pytest-asyncio (pip install pytest-asyncio)")

        return cast(_F, pytest.fixture(name=name)(needs_pytest_asyncio))
    return cast(_F, _pytest_asyncio.fixture(func))


@pytest.fixture(scope="session")
def toxiproxy_server() -> Iterator[ToxiproxyEndpoint]:
    """The Toxiproxy server of this run: ``$TOXIPROXY_URL``, else the embedded one."""
    with running_toxiproxy() as endpoint:
        yield endpoint


@_async_fixture
async def toxiproxy(toxiproxy_server: ToxiproxyEndpoint) -> AsyncIterator[ToxiproxyControl]:
    """A control of the session's server, for this test's event loop; closed after the test."""
    async with ToxiproxyControl(
        toxiproxy_server.url, embedded=toxiproxy_server.embedded
    ) as control:
        control.server_version = toxiproxy_server.version
        yield control


@_async_fixture
async def toxiproxy_proxy(
    toxiproxy: ToxiproxyControl, request: pytest.FixtureRequest
) -> AsyncIterator[ProxyFactory]:
    """``await toxiproxy_proxy(upstream=...)``: a proxy, deleted after the test."""
    factory = ProxyFactory(toxiproxy, request.node.name)
    try:
        yield factory
    finally:
        await factory.cleanup()


@_async_fixture
async def chaos_scenario(toxiproxy: ToxiproxyControl) -> AsyncIterator[ScenarioRunner]:
    """``await chaos_scenario("name", scale=...)``: a scenario run, its result to assert on."""
    yield ScenarioRunner(toxiproxy)
