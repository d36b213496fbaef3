"""The router: aiohttp's, finding a request's resource by the shape of its path.

aiohttp's UrlDispatcher indexes resources by the path before their first
variable part and tries every resource under it in turn, awaiting each one's
regex: all sixteen of ours under /chats (each path is served with and without
a trailing slash). A request to /chats/{chat_id}/members tried eleven of them,
25 us of a request's Python on this project's machine, a tenth of a read.

Router keeps that walk as the fallback and first looks the resource up by its
path's shape: the path's segments, with each variable segment (`{chat_id}`)
standing for any segment. The one resource of that shape then resolves the
request as aiohttp would (its regex, its methods), so the match is the same;
whatever the shape does not settle (no such shape, a segment the variable's
pattern refuses, a method the resource does not serve: 404 and 405, with
their Allow list) goes through aiohttp's own walk. tests/test_routing.py
checks that both find the same for every route and for paths that match none.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractResource, UrlMappingMatchInfo

# A path's segments, None where a resource takes a variable.
Shape = tuple[str | None, ...]


def _shape(formatter: str) -> Shape | None:
    """The shape of a resource's path; None for a path the shapes cannot express
    (a segment mixing text and a variable, such as /files/{name}.json)."""
    shape: list[str | None] = []
    for segment in formatter.split("/"):
        if "{" not in segment and "}" not in segment:
            shape.append(segment)
        elif segment.startswith("{") and segment.endswith("}") and segment.count("{") == 1:
            shape.append(None)
        else:
            return None
    return tuple(shape)


class Router(web.UrlDispatcher):
    def __init__(self) -> None:
        super().__init__()
        self._by_shape: dict[Shape, AbstractResource] = {}
        # For each segment count, the variable positions of the shapes that have it,
        # fewest first: a path with a literal segment finds its plain resource first.
        self._variables: dict[int, list[tuple[int, ...]]] = {}

    def register_resource(self, resource: AbstractResource) -> None:
        super().register_resource(resource)
        info = resource.get_info()
        if isinstance(resource, web.PlainResource):
            shape = _shape(info["path"])
        elif isinstance(resource, web.DynamicResource):
            shape = _shape(info["formatter"])
        else:  # static files, sub-applications: the walk finds them
            return
        if shape is None or shape in self._by_shape:  # two of one shape: registration order decides
            return
        self._by_shape[shape] = resource
        variables = tuple(i for i, segment in enumerate(shape) if segment is None)
        positions = self._variables.setdefault(len(shape), [])
        if variables not in positions:
            positions.append(variables)
            positions.sort(key=len)

    async def resolve(self, request: web.Request) -> UrlMappingMatchInfo:
        segments = request.rel_url.path_safe.split("/")
        for variables in self._variables.get(len(segments), ()):
            shape: list[str | None] = list(segments)
            for i in variables:
                shape[i] = None
            resource = self._by_shape.get(tuple(shape))
            if resource is not None:
                match_info, _allowed = await resource.resolve(request)
                if match_info is not None:
                    return match_info
        return await super().resolve(request)
