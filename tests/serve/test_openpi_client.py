"""openpi's own client (openpi-client 0.1.2 from PyPI) against `vjx serve`: what a robot
program gets is what `vjx run` computes for the same observation and seed."""

import json

import numpy as np
from openpi_client import websocket_client_policy

from conftest import vjx


def run_actions(export_dir, obs, *args):
    done = vjx("run", export_dir, *obs.run_args(), "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_metadata_frame_describes_the_export(exports, serve):
    server = serve(exports["vla_jepa"])
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    meta = client.get_server_metadata()
    assert meta["policy_type"] == "vla_jepa"
    assert [c["key"] for c in meta["cameras"]] == ["observation.images.agentview", "observation.images.wrist"]
    assert meta["cameras"][1]["shape"] == [3, 100, 76]
    assert (meta["state_dim"], meta["action_dim"], meta["precision"]) == (8, 7, "fp32")
    assert meta["request_keys"]["observation/agentview"] == "observation.images.agentview"
    assert meta["request_keys"]["prompt"] == "task"


def test_vla_jepa_actions_equal_vjx_run_for_the_same_observation_and_seed(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"], "--seed", 5)
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    response = client.infer(vla_obs.request())
    expected = np.asarray(run_actions(exports["vla_jepa"], vla_obs, "--seed", 5)["actions"], dtype=np.float32)
    assert response["actions"].dtype == np.float32
    assert response["actions"].shape == expected.shape == (7, 7)
    np.testing.assert_array_equal(response["actions"], expected)
    assert response["server_timing"]["infer_ms"] > 0
    assert "dit_step0" in response["policy_timing"]


def test_the_feature_keys_of_the_export_are_accepted_too(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    request = vla_obs.request()
    renamed = {
        "observation.images.agentview": request.pop("observation/agentview"),
        "observation.images.wrist": request.pop("observation/wrist"),
        "observation.state": request.pop("observation/state"),
        "task": request.pop("prompt"),
    }
    expected = np.asarray(run_actions(exports["vla_jepa"], vla_obs)["actions"], dtype=np.float32)
    np.testing.assert_array_equal(client.infer(renamed)["actions"], expected)


def test_a_configured_key_alias_reaches_its_camera(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"], "--key", "base_rgb=observation.images.agentview")
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    request = vla_obs.request()
    request["base_rgb"] = request.pop("observation/agentview")
    expected = np.asarray(run_actions(exports["vla_jepa"], vla_obs)["actions"], dtype=np.float32)
    np.testing.assert_array_equal(client.infer(request)["actions"], expected)


def test_float_chw_frames_in_zero_one_give_the_same_actions_as_uint8(exports, serve, vla_obs):
    server = serve(exports["vla_jepa"])
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    request = vla_obs.request()
    uint8 = client.infer(request)["actions"]
    for key in ("observation/agentview", "observation/wrist"):
        request[key] = (request[key].astype(np.float32) / 255.0).transpose(2, 0, 1).copy()
    client.infer({"reset": True})
    np.testing.assert_array_equal(client.infer(request)["actions"], uint8)


def test_dexvla_returns_its_reasoning_with_the_actions_of_vjx_run(exports, serve, dexvla_obs):
    server = serve(exports["dexvla"])
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    response = client.infer(dexvla_obs.request())
    expected = run_actions(exports["dexvla"], dexvla_obs)
    np.testing.assert_array_equal(response["actions"], np.asarray(expected["actions"], dtype=np.float32))
    assert response["reasoning"] == expected["reasoning"]


def test_lingbot_va_keeps_one_episode_per_connection_until_reset(exports, serve, lingbot_calls):
    server = serve(exports["lingbot_va"])
    first_call, second_call = lingbot_calls[0], lingbot_calls[1]
    client = websocket_client_policy.WebsocketClientPolicy(server.url)
    chunk0 = client.infer(first_call.request())
    chunk1 = client.infer(second_call.request())
    assert (chunk0["chunks"], chunk1["chunks"]) == (1, 2)
    expected = np.asarray(run_actions(exports["lingbot_va"], first_call)["actions"], dtype=np.float32)
    np.testing.assert_array_equal(chunk0["actions"], expected)
    assert not np.array_equal(chunk1["actions"][: len(expected)], expected)

    assert client.infer({"reset": True})["chunks"] == 0
    np.testing.assert_array_equal(client.infer(first_call.request())["actions"], expected)

    other = websocket_client_policy.WebsocketClientPolicy(server.url)
    np.testing.assert_array_equal(other.infer(first_call.request())["actions"], expected)
