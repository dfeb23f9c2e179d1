"""Runs that survive crashes and preemption, split by job:

    checkpoints    completion markers, resuming from the latest complete checkpoint, safe rotation
    barriers       collectives that log what they wait for
    preemption     SIGTERM/SIGUSR1 -> every rank stops after the same step, saves, exits 143
    exit_protocol  how a rank tells the launcher its exit code, and torchrun not to restart
    launcher       `python -m medtrain.resilience`: torchrun under run_pt.sh / run_sft.sh
    faults         fault injection points (tests install injectors; nothing happens otherwise)
"""
