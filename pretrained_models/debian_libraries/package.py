"""Copy a finished training run of train.yaml into this folder, small enough to commit.

    python pretrained_models/debian_libraries/package.py --log-dir ./log/debian_libraries --run-log train_output.txt

Writes, beside this script:
- `<size>/` model folders: every network at the largest size (fine-tuning and
  projection use its critic), the EMA generator alone below (what sampling
  uses);
- `samples.png`: per collection, a row of pages the largest generator draws for
  it (seed 2018) above a row of its real pages (the README's opening picture);
- `tour.png`: frames of a walk from a manual page to a slide to a card, the
  collection input travelling with the latent as in the movie;
- `training_curve.csv` (every logged loss and health value) and `training_summary.md` (per phase);
- `metrics/`: the evaluate stage's SWD and memorization results;
- `training_log.txt`: the run's log lines, progress bars dropped;
- `documents.tsv` and `licenses/` from the data folder the fetch script wrote.
"""

import argparse
import csv
import os
import pathlib
import re
import shutil
import sys

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from deepzine.data.preview import drawn_pages_by_collection  # noqa: E402
from deepzine.data.store import PageStore  # noqa: E402
from deepzine.model.loading import load_generator, locate_model  # noqa: E402
from deepzine.model.model_folder import load_model_folder, save_model_folder  # noqa: E402
from deepzine.sampling.images import save_grid, to_uint8  # noqa: E402
from deepzine.sampling.latent_paths import waypoint_path  # noqa: E402

FULL_SIZES = 1        # the largest size shipped with every network (the critic too: fine-tuning, projection)
SAMPLE_SEED = 2018
SAMPLES_PER_ROW = 8
LABEL = 14            # px above a collection's rows, for its name
GAP = 2
TOUR_FRAMES_PER_SEGMENT = 6
LOG_LINE = re.compile(r'^\d\d:\d\d:\d\d (INFO|WARNING|ERROR) ')
PHASE_END = re.compile(r'^(\d\d:\d\d:\d\d) INFO phase \d+/\d+: (\d+)x\d+ (\w+),')
SCALAR_PREFIXES = ('loss/', 'health/', 'schedule/', 'speed/')


def model_sizes(log_dir):
    return sorted(int(name) for name in os.listdir(log_dir) if name.isdigit() and (log_dir / name / 'model.json').exists())


def without_local_paths(folder, root):
    """model.json records the run's config; show paths relative to the repository, not this machine's."""
    path = folder / 'model.json'
    path.write_text(path.read_text().replace(str(root) + '/', './'))


def copy_models(log_dir, root):
    sizes = model_sizes(log_dir)
    for size in sizes:
        target = HERE / str(size)
        if size in sizes[-FULL_SIZES:]:
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(log_dir / str(size), target)
        else:
            architecture, _, generator_ema, _, description = load_model_folder(str(log_dir / str(size)))
            save_model_folder(str(target), architecture, size, generator_ema, config=description['config'],
                              collections=description.get('collections'))
        without_local_paths(target, root)
    return sizes


def write_samples(generator, page_file):
    """Per collection: its name, a row of generated pages, a row of real ones drawn from the page file."""
    size, names = generator.size, generator.collection_names
    latents = np.random.default_rng(SAMPLE_SEED).standard_normal((SAMPLES_PER_ROW * len(names), generator.latent_size))
    numbers = np.repeat(np.arange(len(names)), SAMPLES_PER_ROW)
    generated = to_uint8(generator.generate(latents, generator.one_hot(numbers)))
    with PageStore(page_file) as store:
        assert store.collection_names == names, (store.collection_names, names)
        drawn = drawn_pages_by_collection(store.collection_numbers, len(names), SAMPLES_PER_ROW * len(names),
                                          SAMPLE_SEED)
        reals = [store.read(size, indices) for indices in drawn]
    width = SAMPLES_PER_ROW * (size + GAP) - GAP
    block = LABEL + 2 * size + GAP
    sheet = Image.new('RGB', (width, len(names) * block), 'white')
    draw = ImageDraw.Draw(sheet)
    for row, name in enumerate(names):
        top = row * block
        draw.text((0, top + 2), f'{name}: generated (above), real (below)', fill='black')
        for column in range(SAMPLES_PER_ROW):
            left = column * (size + GAP)
            sheet.paste(Image.fromarray(generated[row * SAMPLES_PER_ROW + column]).convert('RGB'), (left, top + LABEL))
            sheet.paste(Image.fromarray(reals[row][column]).convert('RGB'), (left, top + LABEL + size + GAP))
    sheet.save(HERE / 'samples.png')


def write_tour(generator):
    """One row of frames: slerp between three latents while the collection input moves from manuals to slides to
    cards (what interpolation does between waypoints of different collections)."""
    waypoints = np.random.default_rng(SAMPLE_SEED + 1).standard_normal((len(generator.collection_names), generator.latent_size))
    latents = waypoint_path(waypoints, TOUR_FRAMES_PER_SEGMENT, 'slerp', loop=False)
    collections = waypoint_path(generator.one_hot(range(len(waypoints))), TOUR_FRAMES_PER_SEGMENT, 'linear', loop=False)
    save_grid(generator.generate(latents, collections), str(HERE / 'tour.png'), columns=len(latents))


def read_scalars(log_dir):
    """{step: {tag: value}} from the run's TensorBoard events."""
    rows = {}
    for events in sorted((log_dir / 'tensorboard').glob('events.out.tfevents.*')):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            for value in event.summary.value:
                if not value.tag.startswith(SCALAR_PREFIXES):
                    continue
                number = float(tf.make_ndarray(value.tensor)) if value.HasField('tensor') else value.simple_value
                rows.setdefault(event.step, {})[value.tag] = number
    return rows


def write_curve(rows):
    tags = sorted({tag for row in rows.values() for tag in row if tag.startswith(SCALAR_PREFIXES)})
    with open(HERE / 'training_curve.csv', 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(['step'] + tags)
        for step in sorted(rows):
            if any(tag in rows[step] for tag in tags):
                writer.writerow([step] + [f'{rows[step][tag]:.6g}' if tag in rows[step] else '' for tag in tags])
    return tags


def phase_summary(run_log_lines, rows):
    """Per phase run: wall time, images/s and the mean losses over the phase's last fifth (all its runs)."""
    starts = [(match.group(1), int(match.group(2)), match.group(3), '(from step' in line)
              for line, match in zip(run_log_lines, map(PHASE_END.match, run_log_lines)) if match]
    finished = [line[:8] for line in run_log_lines if ' done: checkpoint ' in line]
    lines = ['| phase | wall time | images/s | D loss | G loss | Wasserstein estimate | gradient penalty |',
             '| --- | --- | --- | --- | --- | --- | --- |']
    steps = sorted(rows)
    for (start, size, kind, resumed), end in zip(starts, finished):
        seconds = (_seconds(end) - _seconds(start)) % 86400
        in_phase = [step for step in steps if rows[step].get('schedule/size') == size
                    and (rows[step].get('schedule/alpha', 1.0) < 1.0) == (kind == 'fade')]
        tail = in_phase[len(in_phase) * 4 // 5:] or in_phase

        def mean(tag, digits=3):
            values = [rows[step][tag] for step in tail if tag in rows[step]]
            return f'{sum(values) / len(values):.{digits}f}' if values else ''
        lines.append(f'| {size}x{size} {kind}{" (resumed)" if resumed else ""} | {seconds // 60:.0f} min {seconds % 60:02.0f} s | '
                     f'{mean("speed/images_per_second", 0)} | {mean("loss/discriminator")} | {mean("loss/generator")} | '
                     f'{mean("loss/wasserstein_estimate")} | {mean("loss/gradient_penalty")} |')
    return lines


def _seconds(clock):
    hours, minutes, seconds = map(int, clock.split(':'))
    return hours * 3600 + minutes * 60 + seconds


def copy_metrics(log_dir, root):
    target = HERE / 'metrics'
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for path in sorted((log_dir / 'metrics').glob('*')):
        if path.suffix == '.json':
            (target / path.name).write_text(path.read_text().replace(str(root) + '/', './'))
        elif path.suffix == '.png':
            shutil.copyfile(path, target / path.name)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--log-dir', type=pathlib.Path, default=pathlib.Path('log/debian_libraries'))
    parser.add_argument('--run-log', type=pathlib.Path, required=True, help='what the training run printed')
    parser.add_argument('--data', type=pathlib.Path, default=pathlib.Path('data/debian_libraries'),
                        help='the folder fetch_debian_libraries.py wrote')
    parser.add_argument('--pages', type=pathlib.Path, default=pathlib.Path('data/debian_libraries.hdf5'),
                        help="train.yaml's page file (the real pages of samples.png)")
    arguments = parser.parse_args()
    root = pathlib.Path.cwd().resolve()
    log_dir = arguments.log_dir.resolve()
    sizes = copy_models(log_dir, root)
    generator = load_generator(locate_model(str(HERE), None, sizes[-1]))
    write_samples(generator, arguments.pages)
    write_tour(generator)
    run_log_lines = [line for line in arguments.run_log.read_text().splitlines() if LOG_LINE.match(line)]
    (HERE / 'training_log.txt').write_text('\n'.join(line.replace(str(root) + '/', './') for line in run_log_lines) + '\n')
    rows = read_scalars(log_dir)
    write_curve(rows)
    (HERE / 'training_summary.md').write_text('\n'.join(phase_summary(run_log_lines, rows)) + '\n')
    copy_metrics(log_dir, root)
    shutil.copyfile(arguments.data / 'documents.tsv', HERE / 'documents.tsv')
    shutil.rmtree(HERE / 'licenses', ignore_errors=True)
    shutil.copytree(arguments.data / 'licenses', HERE / 'licenses')
    print(f'packaged sizes {sizes} into {HERE}')


if __name__ == '__main__':
    main()
