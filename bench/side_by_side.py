"""Put sample grids side by side under their labels: the figures in bench/README.md.

    python bench/side_by_side.py OUT.png "label one" one.png "label two" two.png ...
"""

import sys

from PIL import Image, ImageDraw

LABEL_HEIGHT = 16
GAP = 8


def side_by_side(pairs):
    images = [(label, Image.open(path).convert('RGB')) for label, path in pairs]
    width = sum(image.width for _, image in images) + GAP * (len(images) - 1)
    height = max(image.height for _, image in images) + LABEL_HEIGHT
    sheet = Image.new('RGB', (width, height), 'white')
    draw = ImageDraw.Draw(sheet)
    left = 0
    for label, image in images:
        draw.text((left + 2, 2), label, fill='black')
        sheet.paste(image, (left, LABEL_HEIGHT))
        left += image.width + GAP
    return sheet


def main(argv):
    output, rest = argv[0], argv[1:]
    if not rest or len(rest) % 2:
        sys.exit('usage: side_by_side.py OUT.png LABEL IMAGE [LABEL IMAGE ...]')
    side_by_side(list(zip(rest[::2], rest[1::2]))).save(output)


if __name__ == '__main__':
    main(sys.argv[1:])
