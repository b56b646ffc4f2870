"""Model tests share the machine with another pytest worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Gradient boosting uses OpenMP; two workers × two spinning threads on two cores are 10× slower."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield
