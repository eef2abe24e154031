"""Exports of the committed fixtures, and a `vjx serve` process per test."""

import json
import os
import pathlib
import signal
import subprocess

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VJX = os.environ.get("VJX_BIN", str(ROOT / "target" / "debug" / "vjx"))


def vjx(*args, **kwargs):
    return subprocess.run([VJX, *map(str, args)], capture_output=True, text=True, **kwargs)


def export(tmp_root, name, *args):
    out = tmp_root / name
    if not (out / "manifest.json").is_file():
        done = vjx("export", *args, "--out", out, "--json")
        assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    vla = FIXTURES / "vla_jepa" / "two_cam_resize"
    lingbot = FIXTURES / "lingbot_va" / "small_window"
    dexvla = FIXTURES / "dexvla" / "reasoning_stop"
    return {
        "vla_jepa": export(root, "vla_jepa", "--checkpoint", vla / "checkpoint", "--backbone", vla / "backbone"),
        "lingbot_va": export(root, "lingbot_va", "--checkpoint", lingbot / "checkpoint", "--backbone", lingbot / "wan"),
        "dexvla": export(root, "dexvla", "--checkpoint", dexvla / "train_output" / "checkpoint-100"),
    }


def rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


class Observation:
    """A fixture observation both as `vjx run` arguments and as an openpi request."""

    def __init__(self, images, state, task):
        self.images, self.state, self.task = images, state, task

    def run_args(self):
        args = []
        for key, path in self.images.items():
            args += ["--image", f"{key}={path}"]
        if self.state is not None:
            args.append("--state=" + ",".join(repr(float(v)) for v in self.state))
        return args + ["--task", self.task]

    def request(self):
        req = {"observation/" + key.removeprefix("observation.images."): rgb(path) for key, path in self.images.items()}
        if self.state is not None:
            req["observation/state"] = np.asarray(self.state, dtype=np.float32)
        req["prompt"] = self.task
        return req


@pytest.fixture(scope="session")
def vla_obs():
    obs = FIXTURES / "vla_jepa" / "two_cam_resize" / "obs_0"
    inputs = json.loads((obs / "inputs.json").read_text())
    images = {k: obs / f for k, f in inputs["images"].items()}
    return Observation(images, inputs["state"], inputs["task"])


@pytest.fixture(scope="session")
def dexvla_obs():
    obs = FIXTURES / "dexvla" / "reasoning_stop" / "obs_0"
    inputs = json.loads((obs / "inputs.json").read_text())
    images = {f"observation.images.{k}": obs / f for k, f in zip(inputs["camera_keys"], inputs["cameras"])}
    return Observation(images, inputs["state"], inputs["task"])


@pytest.fixture(scope="session")
def lingbot_calls():
    case = FIXTURES / "lingbot_va" / "small_window"
    episode = json.loads((case / "episode.json").read_text())
    return [
        Observation({k: case / p for k, p in call["images"].items()}, call.get("state"), episode["task"])
        for call in episode["calls"]
    ]


class Server:
    """`vjx serve <export> --port 0 --json ...`, stopped with SIGTERM."""

    def __init__(self, export_dir, *args):
        self.proc = subprocess.Popen(
            [VJX, "serve", str(export_dir), "--port", "0", "--json", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("vjx serve exited: " + self.proc.stderr.read())
        ready = json.loads(line)
        self.url, self.healthz, self.metadata = ready["listening"], ready["healthz"], ready["metadata"]

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.stderr = self.proc.stderr.read()
        return code


@pytest.fixture
def serve():
    servers = []

    def start(export_dir, *args):
        server = Server(export_dir, *args)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
