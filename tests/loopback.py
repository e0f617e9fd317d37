"""Free loopback ports for tests that start several servers or workers at once."""

import socket


def free_ports(count: int) -> list:
    """``count`` distinct free ports on 127.0.0.1 (all held open while choosing, so no two
    are the same)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports
