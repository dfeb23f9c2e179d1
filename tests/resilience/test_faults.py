"""Fault injection points do nothing until a test installs an injector, which then sees every point."""

from medtrain.resilience import faults


def test_points_reach_the_installed_injector_only():
    seen = []
    faults.point("unit_build", unit=1)  # nothing installed: nothing happens
    faults.install(lambda name, **info: seen.append((name, info)))
    try:
        faults.point("unit_build", unit=3)
        faults.point("step_end", step=5, received=[])
    finally:
        faults.install(None)
    faults.point("step_end", step=6)
    assert seen == [("unit_build", {"unit": 3}), ("step_end", {"step": 5, "received": []})]


def test_no_environment_variable_is_read_by_the_package():
    import pathlib

    root = pathlib.Path(faults.__file__).parents[1]
    offenders = [str(p) for p in root.rglob("*.py") if "MEDTRAIN_TEST" in p.read_text()]
    assert offenders == []
