"""Every number README.md states about this model, from a fresh clone: fetch, pack, evaluate, print.

    python pretrained_models/debian_libraries/reproduce.py            # about 930 MB of Debian packages, then ~10 min

Fetches the three collections (skipped when ./data/debian_libraries already
holds them), packs them with train.yaml's keys, evaluates the shipped model
with train.yaml's evaluation keys (evaluation_seed fixed) against those pages
into ./log/debian_libraries_reproduced/metrics, and prints the figures in the
order README.md gives them. Training is not repeated here: its log,
curve and summary are beside this script.
"""

import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
DATA = pathlib.Path('data/debian_libraries')
LOG_DIR = pathlib.Path('log/debian_libraries_reproduced')


def wrapper(*settings):
    command = [sys.executable, str(REPOSITORY / 'wrapper.py'), str(HERE / 'train.yaml')]
    for setting in settings:
        command += ['--set', setting]
    subprocess.run(command, cwd=REPOSITORY, check=True)


def newest(folder, pattern):
    return json.loads(max(folder.glob(pattern), key=lambda path: path.stat().st_mtime).read_text())


def report(metrics):
    swd = newest(metrics, 'swd_*.json')
    nearest = newest(metrics, 'nearest_*.json')
    print(f'SWD x1e3 at {swd["size"]}px over {swd["image_num"]} pages: generated vs real {swd["generated_vs_real"]["mean"]:.2f}, '
          f'real vs real {swd["real_vs_real"]["mean"]:.2f}')
    matrix = swd['collections']
    print('| generated for \\ real pages of | ' + ' | '.join(matrix['collections']) + ' | real vs real |')
    for row, name in enumerate(matrix['collections']):
        cells = [f'{value:.1f}' for value in matrix['generated_vs_real'][row]]
        print(f'| {name} | ' + ' | '.join(cells) + f' | {matrix["real_vs_real"][row]:.1f} |')
    summary = nearest['summary']
    print('nearest real page (RMS, 0-255): ' + ', '.join(f'{key} {value:.1f}' if isinstance(value, float) else f'{key} {value}'
                                                  for key, value in summary.items()))


def main():
    if not (REPOSITORY / DATA).is_dir():
        subprocess.run([sys.executable, str(HERE / 'fetch_debian_libraries.py'), str(DATA)], cwd=REPOSITORY, check=True)
    wrapper('train=false', 'evaluate=false')
    wrapper('load_data=false', 'train=false', 'evaluate=true', f'log_dir={LOG_DIR}',
            'inference_model_directory=./pretrained_models/debian_libraries')
    report(REPOSITORY / LOG_DIR / 'metrics')


if __name__ == '__main__':
    main()
