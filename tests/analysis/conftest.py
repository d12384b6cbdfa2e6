"""Fixtures for the analysis tests."""

from __future__ import annotations

import logging

import pytest
import structlog


@pytest.fixture(scope="module", autouse=True)
def quiet_logs():
    """The recorded runs log at info level; these tests read reports, not logs."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    yield
    structlog.reset_defaults()
