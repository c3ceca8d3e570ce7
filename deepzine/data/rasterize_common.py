"""What every rasterizer shares: the size a page is rendered at, and DocumentError, the one way to say it cannot be.

Bounded rendering: each page is rendered so its longer side has
`longer_side_px` pixels (twice the stored size: enough for area averaging
when squaring), from its own size in points, and never above `max_dpi` when
one is set. So a page's pixels never exceed longer_side_px squared, whatever
size the PDF claims: a 1000 x 1300 scan stored at 3 dpi makes a 333 x 433 inch
page, which at a fixed 100 dpi meant a 4.3 GB bitmap.
"""

POINTS_PER_INCH = 72


class DocumentError(Exception):
    """A document or page that cannot be read; the message is the reason shown in the summary."""


def pixels_per_point(width_pts, height_pts, longer_side_px, max_dpi=None):
    """The rendering scale that gives the page's longer side `longer_side_px` pixels, lowered to max_dpi if set."""
    if not width_pts > 0 or not height_pts > 0:
        raise DocumentError(f'has an empty page box ({width_pts:g} x {height_pts:g} points)')
    scale = longer_side_px / max(width_pts, height_pts)
    return min(scale, max_dpi / POINTS_PER_INCH) if max_dpi else scale


def first_line(error):
    """The first non-empty line of an error or a program's message (without decoration), for a one-line reason."""
    lines = [line.strip(' *') for line in str(error).splitlines() if line.strip(' *')]
    return lines[0] if lines else ''
