"""One torch thread for these tests: tiny networks gain nothing from more, and on a shared
2-core CI box OpenMP threads spinning against other processes made them ~10x slower."""
import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
