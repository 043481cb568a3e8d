"""Routes only services call (the gateway never routes /internal/): notifications reads a link to mail it."""

from __future__ import annotations

from aiohttp import web

from shopkit.answers import json_response
from shopkit.auth import principal, requires
from shopkit.headers import CACHE_CONTROL
from users import links
from users.errors import ClientNotAllowed
from users.keys import USERS
from users.tokens import service_subject

routes = web.RouteTableDef()
# The one client that may read a link's token: the service that mails it.
LINK_READER = "notifications"


@routes.get("/internal/users/{user_id}/links/{link_id}")
@requires("service")
async def read_link(request: web.Request) -> web.Response:
    """A live verification or reset link by the id its event named, with its token, to mail it."""
    if principal(request).subject != service_subject(LINK_READER):
        raise ClientNotAllowed(f"only {LINK_READER} reads links")
    link = await links.read(
        request.app[USERS], request.match_info["user_id"], request.match_info["link_id"]
    )
    # A secret: no cache on the way may keep it.
    return json_response(link.public(), headers={CACHE_CONTROL: "no-store"})
