"""The vhost-per-test fixture gives a working, isolated broker."""

import aio_pika


async def test_publish_and_get_in_private_vhost(amqp_url: str) -> None:
    conn = await aio_pika.connect_robust(amqp_url)
    async with conn:
        ch = await conn.channel()
        q = await ch.declare_queue("model-service.trading_signals", durable=True)
        await ch.default_exchange.publish(aio_pika.Message(b"hello"), routing_key=q.name)
        msg = await q.get(timeout=5)
        assert msg is not None
        assert msg.body == b"hello"
        await msg.ack()
