"""RabbitMQ from the server side: vhosts of a test's own, and connections closed by force."""

from __future__ import annotations

import subprocess


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def vhost_url(amqp_url: str, name: str) -> str:
    return f"{amqp_url.rstrip('/')}/{name}"


def drop_connections(name: str) -> None:
    """Close every connection of vhost ``name`` from the server (the broker keeps running)."""
    rabbitmqctl("close_all_connections", "--vhost", name, "fault injected: connection dropped")
