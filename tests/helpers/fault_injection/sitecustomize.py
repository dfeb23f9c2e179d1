"""Fault injection for tests that run the real entry points in subprocesses (torchrun, run_pt.sh).

The tests put this directory on PYTHONPATH; Python imports `sitecustomize` at start-up, and when a
MEDTRAIN_TEST_* variable is set this installs the matching injector into `medtrain.resilience.faults`
(the package itself never reads these variables)."""

import os

if any(k.startswith("MEDTRAIN_TEST_") for k in os.environ):
    from medtrain_test_faults import install_from_env

    install_from_env()
