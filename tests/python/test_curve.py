"""CurveZMQ through jupyter_client: with transport_encryption="required" the client provisions
Curve keys in the connection file and every channel is encrypted. A kernelspec that does not
declare "curve" (a build whose libzmq lacks CURVE) must be refused by the client instead of
being started in plain text.

`make curve-test` runs this file on a kernelspec of the build linked with a libzmq that has
CURVE, with RHAI_KERNEL_EXPECT_CURVE=1: then the round trip is required, and a kernelspec
without "curve" or a pyzmq without CURVE fails the test instead of taking the refusal branch
or skipping."""

import os

import pytest
import zmq
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

KERNEL = "rhai"
EXPECT_CURVE = os.environ.get("RHAI_KERNEL_EXPECT_CURVE") == "1"


def declares_curve():
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    return "curve" in (spec.metadata.get("supported_encryption") or [])


@pytest.fixture
def manager():
    if not zmq.has("curve"):
        if EXPECT_CURVE:
            pytest.fail("RHAI_KERNEL_EXPECT_CURVE=1, but this pyzmq has no CURVE support")
        pytest.skip("this pyzmq has no CURVE support")
    km = KernelManager(kernel_name=KERNEL, transport_encryption="required")
    yield km
    if km.has_kernel:
        km.shutdown_kernel(now=True)


def test_required_encryption_round_trip_or_refusal(manager):
    if not declares_curve():
        assert not EXPECT_CURVE, (
            "RHAI_KERNEL_EXPECT_CURVE=1, but the kernelspec under test does not declare "
            f"curve: {KernelSpecManager().get_kernel_spec(KERNEL).argv}"
        )
        with pytest.raises(RuntimeError, match="supported_encryption|does not declare"):
            manager.start_kernel()
        return
    manager.start_kernel()
    info = manager.get_connection_info()
    assert len(info["curve_publickey"]) == 40 and len(info["curve_secretkey"]) == 40
    client = manager.client()
    client.start_channels()
    outputs = []
    try:
        client.wait_for_ready(timeout=30)
        reply = client.execute_interactive('print("sealed"); 6 * 7', timeout=30, output_hook=outputs.append)
        assert reply["content"]["status"] == "ok"
        texts = [m["content"].get("text") for m in outputs if m["msg_type"] == "stream"]
        results = [m["content"]["data"]["text/plain"] for m in outputs if m["msg_type"] == "execute_result"]
        assert "".join(t for t in texts if t) == "sealed\n"
        assert results == ["42"]
        assert client.is_alive()
    finally:
        client.stop_channels()
