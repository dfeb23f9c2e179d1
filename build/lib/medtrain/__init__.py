"""medtrain: continued pretraining, SFT and preference training of causal LLMs, on HF Transformers.

Layers, each a sub-package that imports only from the layers above it in this list:

    errors      the errors a user can act on, and the exit codes they end a run with
    runtime     this process: rank and world from the launcher, logging, memory and CPU measures
    config      arguments from flags or a config file, resolved once into a saved run configuration
    data        documents from files to batch rows: sources -> encoders -> token store or stream ->
                packing -> mixture -> collation (torch-free up to the datasets)
    resilience  complete-or-ignored checkpoints, preemption, the launcher, fault injection points
    training    model loading, the Trainer and its callbacks, the run shared by every task
    cli         the runs behind the top-level scripts (pretraining.py, supervised_finetuning.py, ...)

Importing `medtrain` loads nothing heavy; import the sub-package you need.
"""

__version__ = "0.3.0"
