"""swarmletd's options, through its entry point: a bad combination stops it (exit status 2)
before anything starts. The daemon's body (``_main``) is replaced by a recorder, so that an
accepted command line shows what it would have been given instead of starting a daemon in the
test process."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import swarmlet.daemon
from swarmlet.agent.devices import DeviceMapping, NodeDevices
from swarmlet.daemon import main
from swarmlet.daemon.listen import TcpHost, UnixHost
from swarmlet.genericresource import discrete, named
from tests.daemon.certs import Authority


@dataclass
class Started:
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(
        self,
        state_dir: Path,
        hosts: list[Any],
        tls: ssl.SSLContext | None,
        docker_host: str,
        hostname: str,
        container_labels: dict[str, str],
        min_cert_expiry: timedelta,
        network_plugin: str,
        shared_engine: bool,
        devices: NodeDevices,
    ) -> None:
        self.calls.append(
            {
                "devices": devices,
                "hosts": hosts,
                "tls": tls,
                "min_cert_expiry": min_cert_expiry,
                "container_labels": container_labels,
                "network_plugin": network_plugin,
                "shared_engine": shared_engine,
            }
        )

    @property
    def only(self) -> dict[str, Any]:
        [call] = self.calls
        return call


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> Started:
    recorder = Started()
    monkeypatch.setattr(swarmlet.daemon, "_main", recorder)
    return recorder


@pytest.fixture
def server(tmp_path: Path) -> Path:
    return Authority.new("operator CA").server("localhost", "127.0.0.1").write(tmp_path / "tls")


def tls_files(server: Path, key: Path | None = None) -> list[str]:
    """The options naming the server's CA, certificate and key (``key`` instead, if given)."""
    return [
        "--tlscacert", str(server / "ca.pem"),
        "--tlscert", str(server / "cert.pem"),
        "--tlskey", str(key or server / "key.pem"),
    ]  # fmt: skip


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str  # what it printed, on either stream


@pytest.fixture
def swarmletd(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Callable[..., Result]:
    """``swarmletd --state-dir <tmp>/state ARGS...``, run in this process."""

    def run(*args: str) -> Result:
        try:
            main(["--state-dir", str(tmp_path / "state"), *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out + captured.err)

    return run


def refused(result: Result, started: Started, tmp_path: Path) -> str:
    """The usage error's text, after checking that nothing started."""
    assert result.exit_code == 2, result.output
    assert started.calls == []
    assert not (tmp_path / "state").exists()
    return result.output


def refused_with_tlsverify(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, tls_options: list[str]
) -> str:
    """``--tlsverify`` on a TCP host with these TLS options: the usage error's text, after
    checking that nothing started."""
    result = swarmletd("--host", "tcp://127.0.0.1:2376", "--tlsverify", *tls_options)
    return refused(result, started, tmp_path)


def test_tcp_without_tlsverify_or_insecure_tcp_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    result = swarmletd("--host", "unix:///run/x.sock", "--host", "tcp://0.0.0.0:2375")
    output = refused(result, started, tmp_path)
    assert "tcp://0.0.0.0:2375" in output
    assert "--tlsverify" in output
    assert "--insecure-tcp" in output


@pytest.mark.parametrize("left_out", ["--tlscacert", "--tlscert", "--tlskey"])
def test_tlsverify_needs_all_three_files(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path, left_out: str
) -> None:
    files = tls_files(server)
    at = files.index(left_out)
    del files[at : at + 2]
    assert f"(missing {left_out})" in refused_with_tlsverify(swarmletd, started, tmp_path, files)


def test_tlsverify_with_a_file_that_does_not_exist_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path
) -> None:
    files = tls_files(server, key=tmp_path / "nowhere.pem")
    output = refused_with_tlsverify(swarmletd, started, tmp_path, files)
    assert "--tlskey" in output
    assert "does not exist" in output


def test_tlsverify_with_a_key_that_does_not_match_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path
) -> None:
    other = Authority.new("other").client("someone").write(tmp_path / "other")
    output = refused_with_tlsverify(
        swarmletd, started, tmp_path, tls_files(server, key=other / "key.pem")
    )
    assert "--tlsverify: cannot use" in output
    assert "KEY_VALUES_MISMATCH" in output


def test_tlsverify_and_insecure_tcp_together_are_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path
) -> None:
    result = swarmletd(
        "--host", "tcp://127.0.0.1:2376", "--tlsverify", "--insecure-tcp",
        *tls_files(server),
    )  # fmt: skip
    assert "contradict" in refused(result, started, tmp_path)


def test_tls_files_without_tlsverify_are_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path
) -> None:
    result = swarmletd("--host", "tcp://127.0.0.1:2375", "--insecure-tcp",
                       *tls_files(server))  # fmt: skip
    output = refused(result, started, tmp_path)
    assert "--tlscacert, --tlscert, --tlskey: used only with --tlsverify" in output


@pytest.mark.parametrize(
    "host", ["ftp://example", "unix://", "tcp://127.0.0.1:http", "tcp://127.0.0.1:2375/api"]
)
def test_a_host_that_is_neither_unix_nor_tcp_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, host: str
) -> None:
    output = refused(swarmletd("--host", host, "--insecure-tcp"), started, tmp_path)
    assert "argument --host: " in output


@pytest.mark.parametrize("value", ["1d", "0", "0s", "-1h", "soon", "60"])
def test_a_min_cert_expiry_that_is_not_a_positive_duration_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, value: str
) -> None:
    output = refused(swarmletd("--min-cert-expiry", value), started, tmp_path)
    assert "argument --min-cert-expiry: " in output


def test_the_unix_socket_alone_needs_neither_flag(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    result = swarmletd("--host", "unix:///run/x.sock")
    assert result.exit_code == 0, result.output
    assert started.only["hosts"] == [UnixHost("unix:///run/x.sock", Path("/run/x.sock"))]
    assert started.only["tls"] is None


def test_insecure_tcp_serves_tcp_without_tls(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    result = swarmletd("--host", "tcp://127.0.0.1:2375", "--insecure-tcp")
    assert result.exit_code == 0, result.output
    assert started.only["hosts"] == [TcpHost("tcp://127.0.0.1:2375", "127.0.0.1", 2375)]
    assert started.only["tls"] is None


def test_tlsverify_gives_tcp_a_context_that_requires_client_certificates(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path, server: Path
) -> None:
    result = swarmletd("--host", "tcp://:2376", "--tlsverify", *tls_files(server))
    assert result.exit_code == 0, result.output
    assert started.only["hosts"] == [TcpHost("tcp://:2376", None, 2376)]
    assert started.only["tls"].verify_mode is ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], timedelta(hours=1)), (["--min-cert-expiry", "90s"], timedelta(seconds=90))],
)
def test_min_cert_expiry_is_given_to_the_daemon(
    swarmletd: Callable[..., Result],
    started: Started,
    tmp_path: Path,
    args: list[str],
    expected: timedelta,
) -> None:
    result = swarmletd("--host", "unix:///run/x.sock", *args)
    assert result.exit_code == 0, result.output
    assert started.only["min_cert_expiry"] == expected


def test_container_labels_are_key_value_pairs(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    output = refused(swarmletd("--container-label", "novalue"), started, tmp_path)
    assert "argument --container-label: expected KEY=VALUE, got 'novalue'" in output


def test_an_abbreviated_flag_is_refused(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    output = refused(swarmletd("--insecure", "--host", "tcp://127.0.0.1:2375"), started, tmp_path)
    assert "unrecognized arguments: --insecure" in output


def test_container_labels_reach_the_daemon(
    swarmletd: Callable[..., Result], started: Started
) -> None:
    result = swarmletd("--container-label", "lab=swl", "--container-label", "note=a=b")
    assert result.exit_code == 0, result.output
    assert started.only["container_labels"] == {"lab": "swl", "note": "a=b"}
    assert started.only["hosts"] == [
        UnixHost("unix:///var/run/swarmlet.sock", Path("/var/run/swarmlet.sock"))
    ]


def test_the_network_plugin_is_swarmlet_unless_named_and_the_engine_is_the_hosts_own(started):
    main([])
    assert started.only["network_plugin"] == "swarmlet"
    assert started.only["shared_engine"] is False
    started.calls.clear()
    main(["--network-plugin", "swl-node2", "--shared-engine"])
    assert started.only["network_plugin"] == "swl-node2"
    assert started.only["shared_engine"] is True


def test_node_generic_resources_are_parsed_as_dockerd_does(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    result = swarmletd(
        "--host", "unix:///run/x.sock",
        "--node-generic-resource", "sgx=2",
        "--node-generic-resource", "gpu=UUID1",
        "--node-generic-resource", "gpu=UUID2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert started.only["devices"].generic[:3] == (
        discrete("sgx", 2),
        named("gpu", "UUID1"),
        named("gpu", "UUID2"),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--node-generic-resource", "sgx"],
            "argument --node-generic-resource: invalid node-generic-resource format `sgx`"
            " expected `name=value`",
        ),
        (
            ["--node-generic-resource", "gpu=a", "--node-generic-resource", "gpu=1"],
            "could not parse GenericResource: mixed discrete and named resources in expression"
            " 'gpu=[a 1]'",
        ),
        (
            ["--node-device", "sgx"],
            "argument --node-device: invalid node-device `sgx`, expected `name=/dev/path",
        ),
        (
            ["--node-device", "sgx=/nonexistent/isgx"],
            "--node-device sgx: /nonexistent/isgx is not a character or block device",
        ),
    ],
)
def test_bad_node_resources_are_refused(
    swarmletd: Callable[..., Result],
    started: Started,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    output = refused(swarmletd(*args), started, tmp_path)
    assert message in " ".join(output.split())


def test_a_node_device_is_given_to_the_daemon(
    swarmletd: Callable[..., Result], started: Started, tmp_path: Path
) -> None:
    result = swarmletd("--host", "unix:///run/x.sock", "--node-device", "fpga=/dev/null:/dev/fpga")
    assert result.exit_code == 0, result.output
    devices = started.only["devices"]
    assert discrete("fpga", 1) in devices.generic
    assert devices.devices["fpga"] == (DeviceMapping("/dev/null", "/dev/fpga"),)
