"""Malformed requests get a text frame naming the field at fault; the same connection then
serves a good request."""

import numpy as np
import pytest
import websockets.sync.client
from openpi_client import msgpack_numpy


def connect(server):
    ws = websockets.sync.client.connect(server.url, compression=None, max_size=None)
    msgpack_numpy.unpackb(ws.recv())
    return ws


def exchange(ws, payload):
    ws.send(payload)
    return ws.recv()


def assert_still_serves(ws, request):
    reply = exchange(ws, msgpack_numpy.packb(request))
    assert isinstance(reply, bytes), reply
    assert msgpack_numpy.unpackb(reply)["actions"].shape == (7, 7)


def raw_array(dtype, shape, data):
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": list(shape)}


def with_(request, **changes):
    out = dict(request)
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            out.pop(key)
        else:
            out[key] = value
    return out


CASES = {
    "not msgpack": (lambda r: b"\x92\x01", "not msgpack"),
    "not a map": (lambda r: msgpack_numpy.packb([1, 2]), "must be a map"),
    "unknown key": (lambda r: msgpack_numpy.packb(with_(r, gripper=1.0)), "unknown request key `gripper`"),
    "object dtype": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=raw_array("|O", (1,), b"\0" * 8))),
        "`observation/wrist`: dtype `|O`",
    ),
    "image data shorter than its shape": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=raw_array("|u1", (100, 76, 3), b"\0" * 10))),
        "`observation/wrist`: shape [100, 76, 3] of uint8 needs 22800 bytes",
    ),
    "image with four channels": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=np.zeros((100, 76, 4), np.uint8))),
        "`observation/wrist`: an image is uint8 [H, W, 3]",
    ),
    "image too large": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=np.zeros((5000, 2, 3), np.uint8))),
        "`observation/wrist`: a 5000x2 image is outside 1..=4096",
    ),
    "float image past one": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=np.full((3, 8, 8), 2.0, np.float32))),
        "`observation/wrist`: float images hold values in [0, 1]",
    ),
    "NaN state": (
        lambda r: msgpack_numpy.packb(with_(r, observation__state=np.array([0, 0, np.nan, 0, 0, 0, 0, 0], np.float32))),
        "state value NaN at index 2 is not finite",
    ),
    "short state": (
        lambda r: msgpack_numpy.packb(with_(r, observation__state=np.zeros(3, np.float32))),
        "state has 3 values, this policy needs 8",
    ),
    "state as a matrix": (
        lambda r: msgpack_numpy.packb(with_(r, observation__state=np.zeros((2, 4), np.float32))),
        "`observation/state` must be a vector",
    ),
    "missing camera": (
        lambda r: msgpack_numpy.packb(with_(r, observation__wrist=None)),
        "camera `observation.images.wrist` is missing",
    ),
    "camera given twice": (
        lambda r: msgpack_numpy.packb(with_(r, **{"observation.images.wrist": r["observation/wrist"]})),
        "both give camera `observation.images.wrist`",
    ),
    "prompt not a string": (lambda r: msgpack_numpy.packb(with_(r, prompt=3)), "`prompt` must be a string"),
    "prompt past the byte limit": (
        lambda r: msgpack_numpy.packb(with_(r, prompt="x" * 5000)),
        "`prompt` has 5000 bytes; the server takes at most 4096",
    ),
    "reset not a bool": (lambda r: msgpack_numpy.packb({"reset": "yes"}), "`reset` must be true or false"),
    "empty request": (lambda r: msgpack_numpy.packb({}), "no observation"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_request_is_named_and_the_connection_stays_usable(case, exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    ws = connect(server)
    make, expected = CASES[case]
    reply = exchange(ws, make(vla_obs.request()))
    assert isinstance(reply, str), f"{case}: got a binary reply"
    assert reply.startswith("error: ") and expected in reply, reply
    assert_still_serves(ws, vla_obs.request())


def test_a_text_frame_is_refused_and_the_connection_stays_usable(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    ws = connect(server)
    assert "binary frames" in exchange(ws, '{"prompt": "hi"}')
    assert_still_serves(ws, vla_obs.request())


def test_a_message_past_the_limit_ends_only_its_connection(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"], "--max-message-bytes", 100_000)
    big = connect(server)
    request = with_(vla_obs.request(), observation__wrist=np.zeros((400, 400, 3), np.uint8))
    try:
        big.send(msgpack_numpy.packb(request))
        reply = big.recv(timeout=30)
        assert isinstance(reply, str) and "too" in reply.lower(), reply
    except websockets.exceptions.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 1009, closed
    assert_still_serves(connect(server), vla_obs.request())
