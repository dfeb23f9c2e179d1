"""Preemption in one process: SIGTERM at a step saves a complete checkpoint, exits 143 with the signal
handlers put back, and the rerun ends with the weights and losses of a run never stopped."""

import os
import signal

from helpers.fault_injection.medtrain_test_faults import KillAtStep
from helpers.runs import assert_same_losses_after, assert_same_weights, flags

from medtrain.errors import EXIT_PREEMPTED as PREEMPTED_EXIT_CODE
from medtrain.resilience import checkpoints as resilience, faults


def test_sigterm_in_one_process_saves_and_resumes(demo_dir, tmp_path, monkeypatch):
    from medtrain.cli.pretrain import main

    base = flags(demo_dir, tmp_path / "cache", "--per_device_train_batch_size", "4", "--report_to", "none")
    assert main(base + ["--output_dir", str(tmp_path / "full"), "--save_strategy", "no"]) == 0
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(faults, "_injector", KillAtStep(4, signal="SIGTERM"))
    part = base + ["--output_dir", str(tmp_path / "part"), "--save_total_limit", "1",
                   "--resume_from_checkpoint", "auto"]
    assert main(part) == PREEMPTED_EXIT_CODE
    assert signal.getsignal(signal.SIGTERM) == before
    # checkpoint-3 was rotated out only after checkpoint-4 (the preemption one) was complete
    assert sorted(os.listdir(tmp_path / "part")) == ["checkpoint-4", "run_config.json"]  # no final model
    assert resilience.is_complete(str(tmp_path / "part" / "checkpoint-4"))
    assert not os.path.exists(tmp_path / "part" / "model.safetensors")  # no final save after preemption
    monkeypatch.setattr(faults, "_injector", None)
    assert main(part) == 0
    assert signal.getsignal(signal.SIGTERM) == before
    assert_same_weights(tmp_path / "full", tmp_path / "part")
    assert_same_losses_after(tmp_path / "full", tmp_path / "part", 4)
