"""How many messages a queue holds (`order_manager.services.ports.backlog.QueueDepth`): a
passive declare on a short-lived channel of the service's connection — the broker's own count
of ready messages, nothing consumed. A queue that was never declared (nothing ever
dead-lettered) holds 0."""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractRobustConnection


class RabbitQueueDepth:
    def __init__(self, connection: AbstractRobustConnection, queue: str) -> None:
        self._connection = connection
        self.queue = queue

    async def depth(self) -> int:
        channel = await self._connection.channel()
        try:
            declared = await channel.declare_queue(self.queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return 0  # the broker closed the channel with it
        finally:
            if not channel.is_closed:
                await channel.close()
        count = declared.declaration_result.message_count
        return int(count or 0)
