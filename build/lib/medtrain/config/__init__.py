"""Arguments: the dataclasses every entry script parses (flags, or a JSON/YAML file plus overriding
flags; an unknown flag is an error), and `run_config`, which resolves them once into the immutable
configuration a run uses, logs it and saves it as `run_config.json` (which reruns the run)."""

from medtrain.config.arguments import DataArguments, ModelArguments, parse_args  # noqa: F401
