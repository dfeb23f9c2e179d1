"""Training on HF Transformers: model and tokenizer loading (`modeling`, LoRA/QLoRA), `MedTrainer`
(the Trainer with our data-side hooks and complete-or-ignored checkpoints), callbacks for the run
summary and the memory guard (`monitoring`), the embedded demo (`demo`), and `runner.run_training`:
the one run shared by pretraining, SFT and preference training."""
