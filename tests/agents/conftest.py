"""Fixtures for the agent tests."""

import hashlib

import pytest
from agent_helpers import make_conv_model, make_matmul_model


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{name: (path, sha256)} of conv, matmul, a corrupt file, and a dynamic-batch conv."""
    d = tmp_path_factory.mktemp("models")
    out = {}
    out["conv"] = (d / "conv.onnx", make_conv_model(d / "conv.onnx", batch=1))
    out["conv_dyn"] = (d / "conv_dyn.onnx", make_conv_model(d / "conv_dyn.onnx"))
    out["matmul"] = (d / "matmul.onnx", make_matmul_model(d / "matmul.onnx"))
    corrupt = d / "corrupt.onnx"
    corrupt.write_bytes(b"this is not a protobuf \x00\x01\x02")
    out["corrupt"] = (corrupt, hashlib.sha256(corrupt.read_bytes()).hexdigest())
    return out
