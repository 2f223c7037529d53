import pytest

from keras_unet import geometry, output_size, valid_input_size


def _reference_output(size, depth):
    """Independent walk through the network, one spatial axis, returning None if it breaks."""
    for _ in range(depth):
        size -= 4
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= 4
    for _ in range(depth):
        if size <= 0:
            return None
        size = size * 2 - 4
    return size if size > 0 else None


def test_paper_tile():
    assert output_size(572) == 388
    assert geometry.border() == 92


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5])
def test_output_size_matches_reference_walk(depth):
    for size in range(1, 700):
        expected = _reference_output(size, depth)
        if expected is None:
            with pytest.raises(ValueError, match=f"input size {size} does not fit"):
                output_size(size, depth)
        else:
            assert output_size(size, depth) == expected
            assert size - expected == 2 * geometry.border(depth)


def test_invalid_size_message_names_neighbours():
    with pytest.raises(ValueError, match="nearest valid sizes: 380 or 396"):
        output_size(388)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_valid_input_size_is_smallest_covering(depth):
    for wanted in range(1, 300, 7):
        size = valid_input_size(wanted, depth)
        assert output_size(size, depth) >= wanted
        smaller = [s for s in range(1, size) if _reference_output(s, depth) is not None
                   and _reference_output(s, depth) >= wanted]
        assert not smaller


def test_same_padding():
    assert output_size(256, padding="same") == 256
    assert valid_input_size(100, padding="same") == 112
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*depth = 16"):
        output_size(100, padding="same")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_size": 572, "depth": 0}, "depth must be an integer >= 1"),
        ({"input_size": 572, "padding": "full"}, "padding must be one of"),
        ({"input_size": -3}, "positive integer"),
        ({"input_size": 57.2}, "positive integer"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        output_size(**kwargs)
