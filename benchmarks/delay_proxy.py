"""A wide-area link on loopback: a TCP relay that holds every chunk for ``delay_ms`` in each direction.

:func:`delay_proxy` starts ``python -m benchmarks.delay_proxy`` (its own
process, so its work does not share the measured client's GIL) on
127.0.0.1. A request and its answer therefore cost one round trip of
``2 * delay_ms`` more, as against a far-away account; bandwidth is not
limited.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from deployments.processes import free_port, start_process, stop_process, wait_until_listening

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def delay_proxy(web_address: str, delay_ms: float) -> Iterator[str]:
    """Relay to ``web_address``'s host with ``delay_ms`` added each way; yields the address through it."""
    target = urlsplit(web_address)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="bench-proxy-")) / "proxy.log"
    process = start_process([sys.executable, "-m", "benchmarks.delay_proxy", "--listen", str(port), "--target",
                             str(target.port), "--delay-ms", str(delay_ms)], log=log, cwd=ROOT)
    wait_until_listening(process, port, what="the delaying proxy", log=log)
    try:
        yield urlunsplit(target._replace(netloc=f"127.0.0.1:{port}"))
    finally:
        stop_process(process)
        shutil.rmtree(log.parent, ignore_errors=True)


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy one direction, each chunk released ``delay`` seconds after it arrived (order kept)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=512)

    async def receive() -> None:
        while True:
            try:
                data = await reader.read(256 * 1024)
            except ConnectionError:
                data = b""
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def release() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(receive(), release())
    except ConnectionError:
        pass


async def _serve_proxy(listen: int, target: int, delay: float) -> None:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        except OSError:
            client_writer.close()
            return
        for sock_writer in (client_writer, server_writer):
            sock = sock_writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            _relay(client_reader, server_writer, delay),
            _relay(server_reader, client_writer, delay),
            return_exceptions=True,
        )
        for sock_writer in (client_writer, server_writer):
            sock_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen)
    async with server:
        await server.serve_forever()


def _main() -> None:
    parser = argparse.ArgumentParser(description="Run the delaying TCP proxy until killed.")
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    args = parser.parse_args()
    asyncio.run(_serve_proxy(args.listen, args.target, args.delay_ms / 1000))


if __name__ == "__main__":
    _main()
