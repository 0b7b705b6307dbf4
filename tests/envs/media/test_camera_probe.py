"""Probing a camera keeps OpenCV's own log quiet (our one error line says it all) and restores its level."""

from __future__ import annotations

import asyncio

import cv2
import pytest

from agentkit.envs.media.camera import CameraSource, quiet_opencv
from agentkit.errors import SourceError

logging_api = getattr(getattr(cv2, "utils", None), "logging", None)
needs_log_api = pytest.mark.skipif(logging_api is None, reason="this OpenCV build has no cv2.utils.logging")


@needs_log_api
def test_opencv_is_silent_while_probing_and_restored_after():
    before = logging_api.getLogLevel()
    seen = []

    def factory(device):
        seen.append(logging_api.getLogLevel())
        return cv2.VideoCapture(device)

    with pytest.raises(SourceError, match="cannot open camera 7"):
        asyncio.run(CameraSource(7, capture_factory=factory).open())
    assert seen == [logging_api.LOG_LEVEL_SILENT]
    assert logging_api.getLogLevel() == before


@needs_log_api
def test_quiet_opencv_restores_the_level_after_an_error():
    logging_api.setLogLevel(logging_api.LOG_LEVEL_INFO)
    try:
        with pytest.raises(RuntimeError), quiet_opencv():
            assert logging_api.getLogLevel() == logging_api.LOG_LEVEL_SILENT
            raise RuntimeError("probe failed")
        assert logging_api.getLogLevel() == logging_api.LOG_LEVEL_INFO
    finally:
        logging_api.setLogLevel(logging_api.LOG_LEVEL_WARNING)
