"""How the server behaves as a network service: where it listens, API keys, health checks,
and shutting down without dropping a request in flight."""

import time
import urllib.error
import urllib.request

import pytest
import websockets.sync.client
from openpi_client import msgpack_numpy, websocket_client_policy


def test_it_listens_on_loopback_by_default(exports, serve):
    server = serve(exports["vla_jepa"])
    assert server.url.startswith("ws://127.0.0.1:")


def test_healthz_answers_ok(exports, serve):
    server = serve(exports["vla_jepa"])
    with urllib.request.urlopen(server.healthz, timeout=10) as reply:
        assert (reply.status, reply.read()) == (200, b"OK\n")


@pytest.fixture
def keyed(exports, serve, tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    return serve(exports["vla_jepa"], "--api-key-file", key_file)


def test_with_an_api_key_a_client_without_it_is_refused(keyed):
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websocket_client_policy.WebsocketClientPolicy(keyed.url)
    assert refused.value.response.status_code == 401


def test_with_an_api_key_a_wrong_key_is_refused(keyed):
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        websocket_client_policy.WebsocketClientPolicy(keyed.url, api_key="s3cret-kez")
    assert refused.value.response.status_code == 401


def test_with_an_api_key_the_right_key_is_served(keyed, vla_obs):
    client = websocket_client_policy.WebsocketClientPolicy(keyed.url, api_key="s3cret-key")
    assert client.infer(vla_obs.request())["actions"].shape == (7, 7)


def test_an_empty_api_key_file_is_refused_at_start(exports, tmp_path):
    from conftest import vjx

    key_file = tmp_path / "key"
    key_file.write_text("\n")
    done = vjx("serve", exports["vla_jepa"], "--port", "0", "--api-key-file", key_file, timeout=60)
    assert done.returncode != 0
    assert "the file is empty" in done.stderr


def test_a_key_alias_to_an_unknown_target_is_refused_at_start(exports):
    from conftest import vjx

    done = vjx("serve", exports["vla_jepa"], "--port", "0", "--key", "cam=observation.images.nope", timeout=60)
    assert done.returncode != 0
    assert "`observation.images.nope` is not a camera of this export" in done.stderr


def test_sigterm_answers_the_request_in_flight_then_exits_zero(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    ws = websockets.sync.client.connect(server.url, compression=None, max_size=None)
    msgpack_numpy.unpackb(ws.recv())
    ws.send(msgpack_numpy.packb(vla_obs.request()))
    time.sleep(0.05)
    assert server.stop() == 0
    reply = ws.recv(timeout=30)
    assert isinstance(reply, bytes)
    assert msgpack_numpy.unpackb(reply)["actions"].shape == (7, 7)
    with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
        ws.recv(timeout=30)
    assert closed.value.rcvd.code == 1001


def test_sigterm_with_idle_clients_exits_zero(exports, serve):
    server = serve(exports["vla_jepa"])
    clients = [websocket_client_policy.WebsocketClientPolicy(server.url) for _ in range(3)]
    assert len(clients) == 3
    assert server.stop() == 0


def test_a_client_that_vanishes_mid_request_leaves_the_others_served(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    gone = websockets.sync.client.connect(server.url, compression=None, max_size=None)
    msgpack_numpy.unpackb(gone.recv())
    gone.send(msgpack_numpy.packb(vla_obs.request()))
    gone.socket.close()
    silent = websockets.sync.client.connect(server.url, compression=None, max_size=None)
    msgpack_numpy.unpackb(silent.recv())
    silent.send(msgpack_numpy.packb(vla_obs.request()))  # never reads its answer
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    for _ in range(3):
        assert client.infer(vla_obs.request())["actions"].shape == (7, 7)
    assert server.stop() == 0
