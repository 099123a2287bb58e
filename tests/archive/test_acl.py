"""The archive's Redis user: enough to consume its group, nothing more."""

from __future__ import annotations

import pytest
from redis.exceptions import NoPermissionError

from archive.worker import Archiver
from coach.bus import Bus
from coach.redis_server import EmbeddedRedis
from tests.callrecord import call_events
from tests.pg import RecordDb

pytestmark = pytest.mark.integration


async def test_archive_user_consumes_and_cannot_publish(record_db: RecordDb) -> None:
    passwords = {"default": "d" * 20, "archive": "a" * 20}
    with EmbeddedRedis(passwords=passwords) as server:
        admin = Bus.connect(server.url)
        mine = Bus.connect(server.url_for("archive"))
        try:
            await admin.publish_many(call_events("c1"))
            archiver = Archiver(mine, record_db.url(), block_ms=50)
            await archiver.start()
            while await archiver.step():
                pass
            await archiver.close()
            assert archiver.written > 0
            with pytest.raises(NoPermissionError):
                await mine.redis.xadd(mine.events_key, {"e": "{}"})
            with pytest.raises(NoPermissionError):
                await mine.redis.xrange(mine.call_key("c1"))
        finally:
            await admin.close()
            await mine.close()
