import socket

from detector.sdnotify import Notifier


def test_notifier_speaks_sd_notify(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(path))
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "20000000")
        n = Notifier()
        assert n.enabled and n.watchdog_interval_s == 10.0
        n.ready("2 probes running")
        n.watchdog()
        n.stopping()
        got = [server.recv(1024).decode() for _ in range(3)]
        assert got == ["READY=1\nSTATUS=2 probes running", "WATCHDOG=1", "STOPPING=1"]
    finally:
        server.close()


def test_notifier_is_silent_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    n = Notifier()
    assert not n.enabled and n.watchdog_interval_s == 0.0
    n.ready()  # no socket, no error
