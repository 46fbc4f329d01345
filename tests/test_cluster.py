"""The search on an existing Ray cluster (head + one worker node) with an MLflow tracking server, all on loopback.

One cluster and one server for the module (real processes: ``ray start``, ``mlflow server``), stopped after; the
test that kills the worker node runs last.
"""

import collections
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from searchutil import TINY, run_search, wait_for

pytestmark = [pytest.mark.cluster]
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]



def stop(*procs: subprocess.Popen, grace_s: float = 3.0) -> None:
    """SIGTERM to each process group at once, SIGKILL to those still up after ``grace_s`` (a head whose worker node
    was killed takes over 30 s to stop by itself)."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.time() + grace_s
    for proc in running:
        try:
            proc.wait(timeout=max(deadline - time.time(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class TrackingServer:
    """An ``mlflow server`` process on 127.0.0.1: it takes about 20 s to come up, so it starts before the Ray cluster
    does and :attr:`uri` waits for it only when a test first asks."""

    def __init__(self, folder: Path):
        self.port, self.artifacts, self.up = free_port(), folder / "server-artifacts", False
        self.proc = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{folder / 'server.db'}", "--artifacts-destination",
             str(self.artifacts)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    @property
    def uri(self) -> str:
        if not self.up:
            assert wait_for(self.healthy, 90), "mlflow server did not start"
            self.up = True
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = TrackingServer(tmp_path_factory.mktemp("mlflow_server"))
    yield server
    stop(server.proc)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory, mlflow_server):
    """A head (1 CPU) and a worker node (1 CPU) on 127.0.0.1, with token authentication as Ray 2.60 does it, and
    an empty torch cache on both nodes (they must get ImageNet weights from the driver). The module's tracking
    server starts first, so that both come up together.

    The token lives in a file of the module's own; the search gets only its path
    (RAY_AUTH_TOKEN_PATH) and must switch to token mode by itself. The worker runs
    in its own process group so that it can be killed alone.
    """
    tmp_path = tmp_path_factory.mktemp("cluster")
    port = free_port()
    token = tmp_path / "ray_token"
    token.write_text(os.urandom(16).hex())
    node_home = tmp_path / "node_torch_home"
    node_home.mkdir()
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    patch.delenv("RAY_AUTH_MODE", raising=False)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token), "TORCH_HOME": str(node_home)}
    address = f"127.0.0.1:{port}"

    def start(*args):
        # --block keeps each node's processes under one process group that this test owns, so the
        # teardown stops this cluster only (never `ray stop`, which would stop every Ray on the machine).
        return subprocess.Popen([str(BIN / "ray"), "start", "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                                 "--disable-usage-stats", "--block", *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, env=env)

    def nodes_up(n):
        status = subprocess.run([str(BIN / "ray"), "status", "--address", address], capture_output=True, text=True,
                                timeout=60, env=env)
        return status.stdout.count(" node_") >= n

    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    head = start("--head", "--port", str(port), "--include-dashboard", "false")
    assert wait_for(listening, 90), "head node did not start"  # its GCS takes nodes from now on
    worker = start("--address", address)
    assert wait_for(lambda: nodes_up(2), 90, 2), "worker node did not join"
    yield SimpleNamespace(address=address, worker=worker, node_home=node_home)
    patch.undo()
    stop(worker, head)


def read_trials(storage, name):
    with open(Path(storage) / name / "trials.csv") as f:
        return list(csv.DictReader(f))


def server_runs(uri, experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return client, [r for r in runs if "mlflow.parentRunId" not in r.data.tags], [
        r for r in runs if "mlflow.parentRunId" in r.data.tags]


@pytest.mark.slow
def test_search_on_a_cluster_with_a_tracking_server_and_no_torch_cache_on_the_nodes(tmp_path, ray_cluster,
                                                                                    mlflow_server, checkpoint_mirror):
    """The driver fetches the ImageNet checkpoints of the four backbones its space can ask for once (from a mirror on
    127.0.0.1, into its own cache) and ships them through Ray's object store: two trials at once, one on each node
    (1 CPU each), whose torch caches are empty, train pretrained; every trial is logged to the tracking server,
    artifacts through it."""
    checkpoint_mirror.add(*RESNETS)
    driver_home = tmp_path / "driver_torch_home"
    storage = tmp_path / "shared"
    done = run_search("--space", "resnet_depth", "--profile", "full", "--address", ray_cluster.address,
                      "--storage", str(storage), "--num-samples", "2", "--max-epochs", "1",
                      "--weights-mirror", checkpoint_mirror.url, "--tracking-uri", mlflow_server.uri,
                      "--resolution", "32", "--images-per-object", "3",
                      env={**os.environ, "TORCH_HOME": str(driver_home)})
    assert done.returncode == 0, done.stderr[-3000:]
    for name in RESNETS:
        assert f"downloading ImageNet weights for {name}" in done.stderr
    trials = read_trials(storage, "resnet_depth")
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    nodes = {t["node_id"] for t in trials}
    assert len(nodes) == 2, f"trials ran on {nodes}"
    for params in (storage / "resnet_depth").glob("trial_*/params.json"):
        assert json.loads(params.read_text())["weights"] == "imagenet"
    assert len(list((driver_home / "hub" / "checkpoints").glob("resnet*.pth"))) == 4
    assert not [p for p in ray_cluster.node_home.rglob("*") if p.is_file()], "a node wrote to its torch cache"
    client, parents, children = server_runs(mlflow_server.uri, "resnet_depth")
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    assert {r.data.tags["node_id"] for r in children} == nodes
    assert {"best_config.json", "trials.csv"} <= {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert any(mlflow_server.artifacts.rglob("best_config.json"))


@pytest.mark.slow
def test_requests_no_node_can_satisfy_are_refused_before_anything_is_written(tmp_path, ray_cluster):
    """The nodes have 1 CPU each: a trial of 2 CPUs could never start (it would wait forever in Ray's queue)."""
    storage = tmp_path / "runs"
    done = run_search("--space", "shallow_cnn", "--storage", str(storage), "--cpus-per-trial", "2", "--address",
                      ray_cluster.address, *TINY, timeout=180)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "--cpus-per-trial 2: the largest Ray node has 1 CPU" in lines[-1], done.stderr
    assert len([line for line in lines if line.startswith("error")]) == 1
    assert not storage.exists()


def test_search_imports_ray_only_after_choosing_the_auth_mode():
    """Ray reads RAY_AUTH_MODE when first imported; the launcher must set it before that happens."""
    code = "import sys, trainables.search; print('ray' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


@pytest.mark.slow
def test_worker_node_killed_mid_search(tmp_path, ray_cluster, mlflow_server):
    """Runs last: it kills the module's worker node."""
    storage = tmp_path / "shared"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainables.search", "--space", "shallow_cnn", "--storage", str(storage),
         "--num-samples", "4", "--max-epochs", "8", "--grace-period", "8", "--recheck-top", "0", "--address",
         ray_cluster.address, "--tracking-uri", mlflow_server.uri, *TINY], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    folder = storage / "shallow_cnn"
    assert wait_for(lambda: len(list(folder.glob("trial_*/result.json"))) >= 2, 180), "trials did not start"
    os.killpg(ray_cluster.worker.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    trials = read_trials(storage, "shallow_cnn")
    counts = collections.Counter(t["status"] for t in trials)
    assert len(trials) == 4 and counts["running"] == 0, counts
    assert f"{counts['completed']} completed, {counts['pruned']} pruned, {counts['failed']} failed" in out
    _, _, children = server_runs(mlflow_server.uri, "shallow_cnn")
    assert len(children) == 4 and all(r.info.status in ("FINISHED", "FAILED") for r in children)
