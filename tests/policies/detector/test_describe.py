"""Words for unclassified things: colour, size, place, edge, direction, speed, counts."""

from __future__ import annotations

import numpy as np
import pytest

from agentkit.policies.detector.describe import (
    colour_name,
    count_text,
    direction_word,
    edge_word,
    median_colour,
    place_word,
    size_word,
    speed_word,
    touching_edges,
)


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 30), "red"),
        ((30, 60, 200), "blue"),
        ((40, 180, 60), "green"),
        ((230, 220, 40), "yellow"),
        ((240, 240, 240), "white"),
        ((128, 128, 128), "grey"),
        ((20, 20, 25), "dark"),
        ((90, 20, 20), "dark red"),
        ((120, 70, 30), "brown"),
        ((200, 60, 200), "pink"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name


def test_median_colour_uses_the_mask() -> None:
    img = np.full((20, 20, 3), 240, np.uint8)
    img[5:15, 5:15] = (200, 30, 30)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 255
    assert colour_name(median_colour(img, mask, (0.0, 0.0, 1.0, 1.0))) == "red"
    assert colour_name(median_colour(img, None, (0.0, 0.0, 1.0, 1.0))) == "white"  # the box is mostly white
    assert median_colour(img, None, (0.5, 0.5, 0.5, 0.5)) is None  # empty box


def test_sizes_places_edges() -> None:
    assert [size_word(a) for a in (0.01, 0.05, 0.2, 0.5)] == ["small", "medium-sized", "large", "very large"]
    assert place_word(0.1, 0.1) == "at the top left"
    assert place_word(0.5, 0.5) == "in the centre"
    assert place_word(0.9, 0.5) == "at the right"
    assert place_word(0.5, 0.9) == "at the bottom"
    assert touching_edges((0.0, 0.2, 0.3, 0.5), 0.03) == ["left"]
    assert touching_edges((0.6, 0.0, 1.0, 0.4), 0.03) == ["right", "top"]
    assert touching_edges((0.3, 0.3, 0.6, 0.6), 0.03) == []
    assert edge_word(["right", "top"]) == "the top right"
    assert edge_word(["bottom"]) == "the bottom"
    assert edge_word([]) == "the middle of the view"


def test_direction_and_speed() -> None:
    assert direction_word(1.0, 0.0) == "right"
    assert direction_word(-1.0, 0.0) == "left"
    assert direction_word(0.0, -1.0) == "up"  # y grows downwards
    assert direction_word(0.0, 1.0) == "down"
    assert direction_word(-1.0, -1.0) == "up and to the left"
    assert direction_word(0.0, 0.0) == "nowhere"
    assert speed_word(0.05) == "slowly" and speed_word(0.3) == "" and speed_word(1.0) == "quickly"


def test_count_text() -> None:
    assert count_text(0, 0) == "no one in view"
    assert count_text(1, 0) == "1 person in view"
    assert count_text(2, 0) == "2 people in view"
    assert count_text(0, 1) == "1 thing in view"
    assert count_text(1, 2) == "1 person and 2 other things in view"
