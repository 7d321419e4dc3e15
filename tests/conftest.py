from __future__ import annotations

import pytest
import torch


@pytest.fixture
def gen() -> torch.Generator:
    """A seeded CPU generator: tests draw their randomness from it, never the global RNG."""
    return torch.Generator().manual_seed(1234)
