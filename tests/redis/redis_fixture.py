#!/usr/bin/env python3
"""CTest fixture: starts a real redis-server on a free loopback port (durable:
appendonly, appendfsync always) and writes the port to DIR/port; `stop`
shuts it down. usage: redis_fixture.py start|stop DIR"""
import os
import shutil
import socket
import subprocess
import sys
import time

action, d = sys.argv[1], sys.argv[2]
os.makedirs(d, exist_ok=True)
if action == "start":
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (run deploy/setup.sh)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                    "--dir", d, "--pidfile", os.path.join(d, "redis.pid"), "--appendonly", "yes",
                    "--appendfsync", "always", "--save", "", "--logfile", os.path.join(d, "redis.log")],
                   check=True)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG":
            break
        time.sleep(0.05)
    else:
        sys.exit(f"redis-server did not answer on port {port}")
    with open(os.path.join(d, "port"), "w") as f:
        f.write(str(port))
    print(f"redis-server on 127.0.0.1:{port}")
else:
    try:
        port = open(os.path.join(d, "port")).read().strip()
        subprocess.run(["redis-cli", "-p", port, "shutdown", "nosave"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass
    print("redis-server stopped")
