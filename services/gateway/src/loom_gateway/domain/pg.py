"""Postgres on the request path: a query whose connection goes back to the pool in the background.

asyncpg resets a connection when it is released (`RESET ALL`, `UNLISTEN *`, ... : one more
round trip), and `pool.fetchrow()` waits for that before returning. On the few statements every
API request runs (key admission, a run's rows) the answer is all the caller needs, so the
release happens in a task the caller does not wait for; the pool waits for such releases when
it closes.
"""

from __future__ import annotations

import asyncio

import asyncpg

_releasing: set[asyncio.Task] = set()


async def fetchrow(pool: asyncpg.Pool, query: str, *args) -> asyncpg.Record | None:
    conn = await pool.acquire()
    try:
        row = await conn.fetchrow(query, *args)
    except BaseException:
        await pool.release(conn)
        raise
    task = asyncio.get_running_loop().create_task(pool.release(conn))
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
    return row
