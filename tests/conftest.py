from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # Every test starts from the same random state, so a failure reproduces.
    torch.manual_seed(0)


@pytest.fixture
def one_thread():
    """One intra-op thread for the duration of a test, restored afterwards. Tiny CPU passes on a shared
    2-core machine gain nothing from a second thread and lose a lot to OpenMP spin-waits under load
    (measured: a 6-step run took 46 s with 2 threads, 4 s with 1). Not for tests compared with child
    processes whose bits may depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread_module():
    """:func:`one_thread` for a whole module, so module-scoped fixtures (reference runs that tests compare
    with bit for bit) run with the same thread count as the tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["0", "1"], ids=["cpu-bf16-off", "cpu-bf16-on"])
def cpu_bf16(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Runs a test twice, as on a CPU without native bf16 and as on one with it (``DEPTHLAB_CPU_BF16=0`` and
    ``=1``; child processes inherit it), so that what ``precision="auto"`` does on either kind of CPU is
    tested on this one, whichever kind it is. The value: whether this run of the test treats the CPU as
    native."""
    monkeypatch.setenv("DEPTHLAB_CPU_BF16", request.param)
    return request.param == "1"


@pytest.fixture
def cpu_bf16_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    """``DEPTHLAB_CPU_BF16`` removed for a test of the detection itself (``/proc/cpuinfo`` decides)."""
    monkeypatch.delenv("DEPTHLAB_CPU_BF16", raising=False)
