from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from agents import events
from agents.roles import can_read


class LiveConsumer(AsyncWebsocketConsumer):
    """Joins the page's group and forwards the fragments published by agents.events."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        route = self.scope["url_route"]["kwargs"]
        if "job_id" in route:
            page, group = "job", events.job_group(route["job_id"])
        else:  # the board's and the agents' groups are named as their pages
            page = group = route.get("group", events.BOARD_GROUP)
        # The page's own read permissions: the socket carries what the page shows.
        if not await database_sync_to_async(can_read)(user, page):
            await self.close(code=4403)
            return
        self.live_group = group
        await self.channel_layer.group_add(self.live_group, self.channel_name)
        await sync_to_async(events.watch)(self.live_group, +1)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "live_group"):
            await self.channel_layer.group_discard(self.live_group, self.channel_name)
            await sync_to_async(events.watch)(self.live_group, -1)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page sends nothing that matters: actions are ordinary htmx POSTs."""

    async def fragment(self, event: dict) -> None:
        await self.send(text_data=event["html"])


class UnknownPathConsumer(AsyncWebsocketConsumer):
    """A socket to a path Baton does not serve: closed at once (the handshake gets 403)."""

    async def connect(self) -> None:
        await self.close(code=4404)
