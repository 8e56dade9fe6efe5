"""Routes whose dependencies are solved from a plan made once, instead of afresh per request.

FastAPI (0.165) walks a route's dependency tree on every request: for each node it classifies
the callable, builds cache keys and scopes, and validates four parameter groups, empty or not.
On the hottest reads that walk cost about a sixth of the worker's CPU per request (measured in
process, the route served both ways alternately: GET /api/tickets/my/{id} 785 → 643 µs with a
hand-made handler, the bound this module approaches). A `DirectRoute` does the same solve from a
plan compiled when FastAPI builds the route's handler: the same dependencies in the same order,
the same per-request cache, FastAPI's own code for `yield` dependencies (their exit stacks and
cancellation shielding) and for parameter validation, the same `RequestValidationError` on bad
input. What the plan does not cover is served by FastAPI's own handler, unchanged: a request
body, a sync callable, security scopes, background tasks, a dependency with a concurrency
limit, an endpoint not declared to return a `Response`, dependency overrides, and any FastAPI
without the internals this relies on.

A speed-up that bends the rule "the library, not hand-written code": kept because FastAPI's
solver is the largest single cost left on a small read. tests/core/test_direct_routes.py
checks that both ways answer the same, errors included.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, get_type_hints

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security.base import SecurityBase
from starlette.requests import Request
from starlette.responses import Response

try:  # FastAPI internals: without them every route keeps FastAPI's own handler.
    from fastapi.dependencies.utils import _solve_generator, request_params_to_args
    from fastapi.routing import _effective_route_context_var

    _INTERNALS = True
except ImportError:  # pragma: no cover - a FastAPI that moved them
    _INTERNALS = False

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])


@dataclass(slots=True)
class _Step:
    """One dependency to run: where its value goes, and its own plan."""

    name: str | None
    call: Callable[..., Any]
    dependant: Dependant
    cache_key: tuple[Any, str]
    use_cache: bool
    generator: bool
    plan: _Plan


@dataclass(slots=True)
class _Plan:
    steps: list[_Step] = field(default_factory=list)
    # The endpoint's function-scoped `yield` dependencies guard their own exit (`unshielded`).
    plain_exit: bool = False
    # (fields, where the values come from) for path, query, header and cookie parameters.
    params: list[tuple[list[Any], Callable[[Request], Any]]] = field(default_factory=list)
    request_name: str | None = None
    response_name: str | None = None


# Each parameter group of a Dependant, and where its values come from.
_SOURCES: dict[str, Callable[[Request], Any]] = {
    "path_params": lambda request: request.path_params,
    "query_params": lambda request: request.query_params,
    "header_params": lambda request: request.headers,
    "cookie_params": lambda request: request.cookies,
}


def unshielded(endpoint: Endpoint) -> Endpoint:
    """Marks an endpoint whose function-scoped `yield` dependencies need no shield from
    FastAPI: their exit sends nothing that a cancellation could cut short, or shields that
    itself (db/session.py's read-only session). A DirectRoute then enters them into the
    function's exit stack as they are. FastAPI wraps each in a cancel scope, a shielding
    context manager and a cancellation checkpoint: in process, alternating rounds, that was 7
    and 9 % of the CPU of GET /api/tickets/my (1,060 → 923 and 1,020 → 924 µs) and 0 and 6 %
    of GET /api/tickets/my/{id} (a run under load from another process)."""
    endpoint.__tk_plain_exit__ = True  # type: ignore[attr-defined]
    return endpoint


def compile_plan(dependant: Dependant, *, plain_exit: bool | None = None) -> _Plan | None:
    """The plan for a dependency tree, or None where FastAPI's own solve must run."""
    if plain_exit is None:
        endpoint = inspect.unwrap(dependant.call) if dependant.call is not None else None
        plain_exit = bool(getattr(endpoint, "__tk_plain_exit__", False))
    if (
        dependant.body_params
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.websocket_param_name
        or dependant.own_oauth_scopes
    ):
        return None
    plan = _Plan(
        request_name=dependant.request_param_name or dependant.http_connection_param_name,
        response_name=dependant.response_param_name,
        plain_exit=plain_exit,
    )
    if dependant.request_param_name and dependant.http_connection_param_name:
        return None
    for name, source in _SOURCES.items():
        fields = getattr(dependant, name)
        if fields:
            plan.params.append((fields, source))
    for sub in dependant.dependencies:
        call = sub.call
        if call is None or sub.concurrency is not None:
            return None
        target = inspect.unwrap(call)
        if isinstance(target, SecurityBase):
            return None
        generator = inspect.isasyncgenfunction(target)
        if not (generator or inspect.iscoroutinefunction(target)):
            return None
        sub_plan = compile_plan(sub, plain_exit=plain_exit)
        if sub_plan is None:
            return None
        scope = sub.scope or ("request" if generator else "")
        plan.steps.append(
            _Step(
                name=sub.name,
                call=call,
                dependant=sub,
                cache_key=(call, scope),
                use_cache=sub.use_cache,
                generator=generator,
                plan=sub_plan,
            )
        )
    return plan


def _returns_response(endpoint: Callable[..., Any]) -> bool:
    target = inspect.unwrap(endpoint)
    if not inspect.iscoroutinefunction(target):
        return False
    try:
        returned = get_type_hints(target).get("return")
    except Exception:
        return False
    return inspect.isclass(returned) and issubclass(returned, Response)


async def _solve(
    plan: _Plan,
    request: Request,
    response: Response,
    cache: dict[tuple[Any, str], Any],
    errors: list[Any],
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for step in plan.steps:
        if step.use_cache and step.cache_key in cache:
            # FastAPI solves a cached dependency's own tree again before it looks in the
            # cache; that tree is cached too, so the value is the same without the walk.
            value = cache[step.cache_key]
        else:
            step_errors: list[Any] = []
            sub_values = await _solve(step.plan, request, response, cache, step_errors)
            if step_errors:
                errors.extend(step_errors)
                continue
            if step.generator:
                function_scoped = step.dependant.scope == "function"
                stack = request.scope[
                    "fastapi_function_astack" if function_scoped else "fastapi_inner_astack"
                ]
                if function_scoped and plan.plain_exit:
                    value = await stack.enter_async_context(
                        asynccontextmanager(step.call)(**sub_values)
                    )
                else:
                    value = await _solve_generator(
                        request=request,
                        dependant=step.dependant,
                        stack=stack,
                        sub_values=sub_values,
                    )
            else:
                value = await step.call(**sub_values)
            cache.setdefault(step.cache_key, value)
        if step.name is not None:
            values[step.name] = value
    for fields, source in plan.params:
        found, wrong = request_params_to_args(fields, source(request))
        values.update(found)
        errors.extend(wrong)
    if plan.request_name:
        values[plan.request_name] = request
    if plan.response_name:
        values[plan.response_name] = response
    return values


def direct_handler(dependant: Dependant, fallback: Handler, overrides: Any) -> Handler:
    """A handler that solves `dependant` from its plan; `fallback` (FastAPI's) otherwise."""
    endpoint = dependant.call
    plan = compile_plan(dependant) if _INTERNALS else None
    if plan is None or endpoint is None or not _returns_response(endpoint):
        return fallback

    async def handler(request: Request) -> Response:
        if overrides is not None and getattr(overrides, "dependency_overrides", None):
            return await fallback(request)
        # The response dependencies may set headers on (FastAPI's "sub-response").
        sub_response = Response()
        del sub_response.headers["content-length"]
        sub_response.status_code = None  # type: ignore[assignment]
        errors: list[Any] = []
        values = await _solve(plan, request, sub_response, {}, errors)
        if errors:
            raise RequestValidationError(errors, body=None)
        response: Response = await endpoint(**values)
        return response

    return handler


class DirectRoute(APIRoute):
    """An APIRoute whose handler solves its dependencies from a plan (see the module's doc);
    OpenAPI, matching and everything else stay FastAPI's."""

    def get_route_handler(self) -> Handler:
        fallback = super().get_route_handler()
        if not _INTERNALS:  # pragma: no cover
            return fallback
        # Under an include FastAPI builds the handler for the included route's effective
        # context (its dependencies plus the include's); the plan must cover the same tree.
        effective = _effective_route_context_var.get()
        route: Any = self
        if effective is not None and effective.original_route is self:
            route = effective
        return direct_handler(route.dependant, fallback, route.dependency_overrides_provider)
