"""The database client every service opens: bounded in connections and in time."""

from __future__ import annotations

from shopkit import mongo


async def test_a_service_opens_at_most_pool_size_connections_unless_its_url_names_a_limit(
    mongo_url: str,
) -> None:
    # given the kit's client, on a URL without a limit and on one with its own
    bounded = mongo.client(mongo_url)
    named = mongo.client(mongo_url.rstrip("/") + "/?maxPoolSize=3")
    try:
        # when each is asked what it allows, then the first has the kit's bound, the second its own
        assert bounded.options.pool_options.max_pool_size == mongo.POOL_SIZE
        assert named.options.pool_options.max_pool_size == 3
        # and both still bound every operation in time
        assert bounded.options.timeout == 5.0
    finally:
        await bounded.close()
        await named.close()
