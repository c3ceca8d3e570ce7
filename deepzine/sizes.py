"""Image sizes: the powers of two a progressive GAN and its page file work with (4, 8, ..., 1024)."""


def sizes_between(smallest, largest):
    """[smallest, 2 * smallest, ..., largest] for powers of two; [] when smallest > largest."""
    sizes = []
    size = smallest
    while size <= largest:
        sizes.append(size)
        size *= 2
    return sizes


def is_power_of_two(value):
    return isinstance(value, int) and value >= 1 and not value & (value - 1)
