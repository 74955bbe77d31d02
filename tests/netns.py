"""A network namespace joined to this host by a veth link, as another machine would be: a process
started in it reaches this host's services only over that link. Services that listen on loopback
(PostgreSQL, the fake exchange) are reached through TCP relays on the host's end of the link."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

RELAY_BUFFER = 65536


def netns_unavailable() -> str | None:
    """Why network namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    return None


class TcpRelay:
    """Accepts on `listen_host` (a port of its own) and forwards each connection to a port on
    127.0.0.1, both ways, until either side closes."""

    def __init__(self, listen_host: str, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server((listen_host, 0))
        self.host = listen_host
        self.port = int(self._server.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._guard = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._guard:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(RELAY_BUFFER):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        with self._guard:
            for end in self._sockets:
                # shutdown first: close() alone sends no FIN while a pump thread is blocked in
                # recv() on the socket, and PostgreSQL then keeps the far process's sessions
                # (with any open transaction's locks) until its keepalives give up.
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    end.close()


class NetNamespace:
    """A namespace `name` with a veth pair: `host_ip` on this side, `inner_ip` inside."""

    def __init__(self, subnet: int) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.name = f"cc-{suffix}"
        self.host_link, self.inner_link = f"cch{suffix}", f"ccn{suffix}"
        self.host_ip = f"10.213.{subnet}.1"
        self.inner_ip = f"10.213.{subnet}.2"
        self.relays: list[TcpRelay] = []

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    def create(self) -> None:
        self._ip("netns", "add", self.name)
        self._ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        self._ip("link", "set", self.inner_link, "netns", self.name)
        self._ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_link)
        self._ip("link", "set", self.host_link, "up")
        inside = ("netns", "exec", self.name, "ip")
        self._ip(*inside, "addr", "add", f"{self.inner_ip}/30", "dev", self.inner_link)
        self._ip(*inside, "link", "set", self.inner_link, "up")
        self._ip(*inside, "link", "set", "lo", "up")

    def relay(self, target_port: int) -> TcpRelay:
        """A relay on the host's end of the link to 127.0.0.1:`target_port`."""
        relay = TcpRelay(self.host_ip, target_port)
        self.relays.append(relay)
        return relay

    def command(self, args: list[str]) -> list[str]:
        """`args` run inside the namespace (`ip netns exec` execs them: same pid)."""
        return ["ip", "netns", "exec", self.name, *args]

    def destroy(self) -> None:
        for relay in self.relays:
            relay.close()
        # Deleting the namespace removes its end of the link, and with it the host's end.
        subprocess.run(["ip", "netns", "delete", self.name], capture_output=True)
        subprocess.run(["ip", "link", "delete", self.host_link], capture_output=True)


@contextlib.contextmanager
def network_namespace(subnet: int = 7) -> Iterator[NetNamespace]:
    """A fresh namespace for the block, removed afterwards."""
    namespace = NetNamespace(subnet)
    try:
        namespace.create()
        yield namespace
    finally:
        namespace.destroy()
