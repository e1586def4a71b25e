"""The API's routers are listed busiest first; that is safe only while no two routers claim one path."""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from allo.app import API_PREFIX


def routers_of_the_api(app: FastAPI) -> list[list[Any]]:
    """Each router included under the API prefix, as the routes it serves (FastAPI's effective routes)."""
    routers: list[list[Any]] = []
    for included in app.routes:
        if not hasattr(included, "effective_candidates"):
            continue
        for router in included.effective_candidates():
            routes = (
                list(router.effective_route_contexts()) if hasattr(router, "effective_route_contexts") else []
            )
            if routes and all(route.path.startswith(API_PREFIX) for route in routes):
                routers.append(routes)
    return routers


def test_no_path_is_claimed_by_routes_of_two_routers(app: FastAPI) -> None:
    routers = routers_of_the_api(app)
    assert len(routers) >= 19
    assert any(route.path == f"{API_PREFIX}/tickets" for route in routers[0])
    clashes: list[str] = []
    for index, routes in enumerate(routers):
        others = [
            route for other_index, other in enumerate(routers) if other_index != index for route in other
        ]
        for route in routes:
            sample = re.sub(r"\{[^}]+\}", "x0", route.path)
            clashes.extend(
                f"{route.path} also matches {other.path}"
                for other in others
                if other.methods & route.methods and other.path_regex.match(sample)
            )
    assert clashes == []
