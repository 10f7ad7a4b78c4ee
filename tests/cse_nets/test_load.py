from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cse_nets import build_network
from cse_nets.load import ExportError, load_model, write_export
from space import Arch, InputShape, Stage

ARCH = Arch(stages=(Stage(op="btn", c=8, n=1, s=1, t=2), Stage(op="cse", c=16, n=2, s=2)),
            stem=8, head=32, act="prelu")
SHAPE = InputShape(in_channels=1, input_size=12, num_classes=5)


def trained_like(seed: int = 0) -> torch.nn.Module:
    """A network whose BatchNorm statistics are not the defaults, as after training."""
    torch.manual_seed(seed)
    network = build_network(ARCH, SHAPE)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return network.eval()


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    write_export(tmp_path, ARCH, SHAPE, {"dataset": "made-up"})
    torch.save(trained_like().state_dict(), tmp_path / "weights.pt")
    return tmp_path


def test_load_model_reproduces_the_outputs_exactly(export_dir):
    images = torch.randn(4, 1, 12, 12)
    with torch.no_grad():
        expected = trained_like()(images)
        loaded = load_model(export_dir)
        assert not loaded.training
        assert torch.equal(loaded(images), expected)


def _edit_model_json(folder: Path, **changes) -> None:
    path = folder / "model.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _break(folder: Path, case: str) -> Path:
    if case == "no directory":
        return folder / "missing"
    if case == "arch.json not JSON":
        (folder / "arch.json").write_text("{")
    if case == "arch.json not an arch":
        (folder / "arch.json").write_text('{"format": 1, "stages": []}')
    if case == "no model.json":
        (folder / "model.json").unlink()
    if case == "model.json bad shape":
        _edit_model_json(folder, num_classes=0)
    if case == "model.json other format":
        _edit_model_json(folder, format=99)
    if case == "arch does not fit the input":
        _edit_model_json(folder, input_size=1)
    if case == "model.json input 100000":
        _edit_model_json(folder, input_size=100_000)
    if case == "model.json format true":
        _edit_model_json(folder, format=True)
    if case == "arch.json nested 200,000 deep":
        (folder / "arch.json").write_text("[" * 200_000 + "]" * 200_000)
    if case == "model.json is /dev/zero":
        (folder / "model.json").unlink()
        (folder / "model.json").symlink_to("/dev/zero")
    if case == "no weights":
        (folder / "weights.pt").unlink()
    if case == "weights not a checkpoint":
        (folder / "weights.pt").write_bytes(b"not a zip file")
    if case == "weights not a state_dict":
        torch.save(torch.zeros(3), folder / "weights.pt")
    if case == "weights for other classes":
        _edit_model_json(folder, num_classes=7)
    if case == "weights missing a key":
        state = torch.load(folder / "weights.pt", weights_only=True)
        del state["classifier.bias"]
        torch.save(state, folder / "weights.pt")
    return folder


@pytest.mark.parametrize(("case", "message"), [
    ("no directory", "not an export directory"),
    ("arch.json not JSON", "not valid JSON"),
    ("arch.json not an arch", "stages"),
    ("no model.json", "cannot read"),
    ("model.json bad shape", "positive integers"),
    ("model.json other format", "format 1"),
    ("arch does not fit the input", "does not fit"),
    ("model.json input 100000", "estimate"),
    ("model.json format true", "format 1"),
    ("arch.json nested 200,000 deep", "nested too deeply"),
    ("model.json is /dev/zero", "larger than 1 MiB"),
    ("no weights", "no weights.pt"),
    ("weights not a checkpoint", "not a readable state_dict"),
    ("weights not a state_dict", "not a state_dict"),
    ("weights for other classes", "classifier.weight is (5, 32), the network expects (7, 32)"),
    ("weights missing a key", "1 missing key(s) ['classifier.bias']"),
])
def test_a_bad_export_is_a_one_line_value_error(export_dir, case, message):
    with pytest.raises(ExportError) as info:
        load_model(_break(export_dir, case))
    assert isinstance(info.value, ValueError)
    assert message in str(info.value) and "\n" not in str(info.value)
