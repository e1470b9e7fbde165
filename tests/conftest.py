"""Shared test settings: hypothesis profiles sized for a 2-core machine (the whole suite stays under a minute), and
one BLAS thread per pytest-xdist worker."""

import os
import shutil

import pytest
from hypothesis import HealthCheck, settings

import minigptoss
from minigptoss.fast import mxfp4 as fastmxfp4

settings.register_profile("default", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config):
    """With pytest-xdist's workers (`-n auto`, pyproject's default), each worker's BLAS gets one thread, so the
    workers share the cores instead of oversubscribing them; the workers inherit this before they import NumPy.
    A run with -n 0 keeps the machine's default. This is the test runner's setting, never the package's."""
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture
def tiny_copy(tmp_path):
    """A copy of the random tiny model's folder (config.json + model.safetensors, not the trained subfolders)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    for path in minigptoss.TINY_WEIGHTS.iterdir():
        if path.is_file():
            shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture
def two_blas_threads():
    """The process's OpenBLAS on two threads for the test (whatever the machine), then as it was."""
    blas = fastmxfp4._process_wide_blas()
    if blas is None:
        pytest.skip("NumPy's BLAS is not a pthreads OpenBLAS")
    get_threads, set_threads = blas
    before = get_threads()
    set_threads(2)
    yield get_threads
    set_threads(before)
