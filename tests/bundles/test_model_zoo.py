"""Both bundles as MONAI model-zoo bundles: metadata valid against the schema (offline copy), ``inference.json``
standalone (``verify_net_in_out`` and ``ckpt_export`` with it alone), ``bundle_root`` independent of the working
directory, the declared handler layout the checkpoint objects refer to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_net_in_out

REPO = Path(__file__).resolve().parents[2]
BUNDLES = ["cxr_expl", "ct_expl"]
SCHEMA = Path(__file__).with_name("meta_schema.json")


def _configs(bundle: str) -> Path:
    return REPO / "bundles" / bundle / "configs"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata_is_valid_against_the_model_zoo_schema(bundle):
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    meta = json.loads((_configs(bundle) / "metadata.json").read_text())
    jsonschema.validate(meta, schema)
    broken = {k: v for k, v in meta.items() if k != "network_data_format"}
    with pytest.raises(jsonschema.ValidationError, match="network_data_format"):
        jsonschema.validate(broken, schema)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_config_alone_passes_verify_net_in_out_and_ckpt_export(bundle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: nothing may depend on the working directory
    configs = _configs(bundle)
    verify_net_in_out(
        net_id="network_def", meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
        device="cpu",
    )  # fmt: skip
    parser = ConfigParser()
    parser.read_config(str(configs / "inference.json"))
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def").eval()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    ckpt_export(
        net_id="network_def", filepath=str(tmp_path / "model.ts"), ckpt_file=str(tmp_path / "model.pt"),
        meta_file=str(configs / "metadata.json"), config_file=str(configs / "inference.json"),
    )  # fmt: skip
    scripted = torch.jit.load(str(tmp_path / "model.ts"))
    shape = json.loads((configs / "metadata.json").read_text())["network_data_format"]["inputs"]["image"]
    x = torch.rand(1, shape["num_channels"], *shape["spatial_shape"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), net(x))


def test_inference_config_alone_from_the_command_line(tmp_path):
    """As a user types it, from a folder that is not the repository."""
    configs = _configs("cxr_expl")
    cmd = [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def", "--config_file",
           str(configs / "inference.json"), "--meta_file", str(configs / "metadata.json")]  # fmt: skip
    out = subprocess.run(cmd, check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "data shape of network is verified with no error" in out.stdout + out.stderr


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("config", ["train.json", "inference.json", "prepare_data.json"])
def test_bundle_root_is_the_bundle_folder_whatever_the_working_directory(bundle, config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = str(REPO / "bundles" / bundle)
    # evaluated while the workflow runs (as `python -m monai.bundle run` does): run_id names the item to evaluate
    wf = ConfigWorkflow(config_file=str(_configs(bundle) / config), logging_file=False, workflow_type=None,
                        run_id="dataset_dir")  # fmt: skip
    wf.initialize()
    assert wf.run()[0].startswith(root + "/data/")
    assert wf.parser.get_parsed_content("bundle_root") == root
    given = ConfigWorkflow(config_file=str(_configs(bundle) / config), logging_file=False, workflow_type=None,
                           run_id="bundle_root", bundle_root="/x/y")  # fmt: skip
    given.initialize()
    assert given.run() == ["/x/y"], "--bundle_root still wins"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_evaluation_overlay_goes_to_the_mlflow_handler_under_its_split(bundle):
    """evaluate.json's saliency figure is logged through the evaluation's MLflow handler (referenced by index), in a
    folder of its split: the test and test_shifted evaluations log to the same training run with one file name."""
    parser = ConfigParser()
    parser.read_config([str(_configs(bundle) / "train.json"), str(_configs(bundle) / "evaluate.json")])
    handlers = parser["validate#handlers"]
    overlay = next(h for h in handlers if isinstance(h, dict) and h["_target_"].endswith("SaliencyOverlayHandler"))
    tracking = overlay["mlflow_handler"]
    assert tracking.startswith("@validate#handlers#")
    assert parser[tracking[1:] + "#_target_"] == "monai_explain.handlers.ResilientMLFlowHandler"
    parser["test_split"] = "test_shifted"
    index = handlers.index(overlay)
    assert parser.get_parsed_content(f"validate#handlers#{index}#artifact_path") == "overlays/test_shifted"


@pytest.mark.parametrize("bundle", BUNDLES)
def test_checkpoint_objects_refer_to_the_declared_handlers(bundle):
    parser = ConfigParser()
    parser.read_config(str(_configs(bundle) / "train.json"))
    best = parser["checkpoint_objects#best_model"]
    assert best.startswith("@validate#handlers#")
    index = int(best.rsplit("#", 1)[1])
    assert parser[f"validate#handlers#{index}#_target_"] == "monai_explain.handlers.BestModelSaver"
    handlers = parser["validate#handlers"]
    if "@validate#threshold" in handlers:  # the threshold of epoch N is chosen before model.pt of epoch N is saved
        assert handlers.index("@validate#threshold") < index
        assert parser[f"validate#handlers#{index}#save_dict#threshold"] == "@validate#threshold"
    assert parser["checkpoint_objects#mlflow"] == "@train#mlflow_handler"
    assert parser["train#mlflow_handler"] == "@train#handlers#0"
    assert parser["train#handlers#0#_target_"].endswith("MLFlowHandler")
    targets = [h["_target_"] for h in parser["train#handlers"]]
    assert targets.index("ValidationHandler") < targets.index("monai_explain.handlers.LastCheckpointSaver"), (
        "the last checkpoint of epoch N holds the best-model state after epoch N's validation"
    )
    # the loader runs at STARTED; the tracker resolves its run at the first value logged (after STARTED), so the
    # MLflow run id of the checkpoint is in place whatever their order in the list
    assert targets.count("monai_explain.handlers.LastCheckpointLoader") == 1
    assert parser["train#handlers"][targets.index("monai_explain.handlers.LastCheckpointLoader")]["load_dict"] == (
        "@checkpoint_objects"
    )
    # a fresh run moves an earlier run's files away before anything is saved, once it holds the folder lock; on rank 0
    assert targets.count("monai_explain.handlers.PreviousRunArchiver") == 1
    archiver = targets.index("monai_explain.handlers.PreviousRunArchiver")
    assert targets.index("monai_explain.handlers.OutputFolderLock") < archiver
    assert parser["train#handlers"][archiver]["ckpt_dir"] == "@ckpt_dir"
    assert parser["train#handlers"][archiver]["_disabled_"] == (
        "$@is_not_rank0 or monai_explain.utils.as_bool(@resume, 'resume')"
    )
    assert parser["run"] == ["$@train#trainer.run()"]


# The plumbing ct_expl's train.json shares with cxr_expl's (a fork: MONAI 1.6 has no include for one config file run
# alone, and its "%file#id" macros read paths from the working directory). Hyperparameters, data, transforms and
# metrics differ by design and are not compared.
SHARED_IDS = [
    "bundle_root", "ckpt_dir", "output_dir", "num_classes", "resume", "allow_shared_output", "run_name",
    "tracking_uri", "is_not_rank0", "datalist", "train_datalist", "val_datalist", "network", "loss",
    "explanation_loss", "train#preprocessing", "train#dataset", "train#dataloader", "train#saliency_method",
    "train#mlflow_handler", "train#trainer", "validate#preprocessing", "validate#dataset", "validate#dataloader",
    "validate#saliency_method", "validate#evaluator", "initialize", "run",
]  # fmt: skip


def test_ct_expl_train_keeps_the_shared_plumbing_of_cxr_expl():
    cxr, ct = (ConfigParser.load_config_file(str(_configs(b) / "train.json")) for b in BUNDLES)
    parsers = ConfigParser(cxr), ConfigParser(ct)
    differ = [i for i in SHARED_IDS if parsers[0][i] != parsers[1][i]]
    assert not differ, f"bundles/ct_expl/configs/train.json drifted from cxr_expl's on {differ}"
    handlers = [{h["_target_"]: h for h in c["train"]["handlers"]} for c in (cxr, ct)]
    common = set(handlers[0]) & set(handlers[1])
    assert {
        "monai_explain.handlers.OutputFolderLock", "monai_explain.handlers.PreviousRunArchiver",
        "monai_explain.handlers.EpochSeedHandler", "monai_explain.handlers.BatchNormRecalibration",
    } <= common  # fmt: skip
    # the decision threshold is chosen on the validation split and saved with the model in both bundles
    for c in (cxr, ct):
        assert c["validate"]["threshold"]["_target_"] == "monai_explain.handlers.DecisionThreshold"
        assert c["validate"]["handlers"][0] == "@validate#threshold"
        saver = next(h for h in c["validate"]["handlers"] if isinstance(h, dict) and "BestModelSaver" in h["_target_"])
        assert saver["save_dict"]["threshold"] == "@validate#threshold"
    assert [t for t in sorted(common) if handlers[0][t] != handlers[1][t]] == []
