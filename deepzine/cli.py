"""The command line: `deepzine CONFIG` (or `deepzine run CONFIG`), and the commands params, movie, project, convert-legacy, preview.

Exit codes, the same for every command, are those of deepzine.errors (the
README's table repeats them): 0 done; 1 a fault met while working (a full
disk, a damaged page file), re-run to continue; 2 a problem with the config or
the input, found before any file is written; 3 training went wrong past
repair; 130 or 143 (128 + the signal number) after Ctrl-C / SIGTERM. SIGINT
and SIGTERM (what `kill`, job schedulers and preemptible machines send) raise
`Interrupted` in the main thread: the running stage keeps what it has finished
and stops. A second signal while stopping exits at once; every file is written
under a temporary name and renamed, so that corrupts nothing either.
"""

import argparse
import difflib
import logging
import os
import signal
import sys
import threading

from deepzine import __version__, pipeline
from deepzine.data.preview import default_preview_path, write_preview
from deepzine.errors import EXIT_INTERRUPTED_BASE, ConfigError, DeepZineError
from deepzine.files import OutOfSpace, is_out_of_space
from deepzine.model.legacy import convert_legacy
from deepzine.parameter_groups import RunParameters
from deepzine.parameters import describe, describe_as_yaml, describe_for_terminal, load_yaml, parse_override
from deepzine.pipeline import parameter_sections, parameter_table
from deepzine.sampling import movie
from deepzine.tensorflow_logs import quiet_tensorflow

EXIT_CONFIG_ERROR = ConfigError.exit_code
EXIT_INTERRUPTED = EXIT_INTERRUPTED_BASE + signal.SIGINT  # 130; SIGTERM gives 143

RUN_EXAMPLES = """examples:
  python wrapper.py config.yaml                      run the stages config.yaml switches on
  python wrapper.py config.yaml --dry-run            the resolved config and the plan (costs, time); writes nothing
  python wrapper.py config.yaml --set train=false --set inference_output_num=16
  python wrapper.py params movie                     the keys that mention "movie"
"""

MOVIE_EXAMPLES = """example:
  deepzine movie ./inference/run-001 ./inference/run-001/walk.mp4 --fps 24 --size 768
"""

CONVERT_EXAMPLES = """examples:
  deepzine convert-legacy pretrained_models/256 converted/256
  deepzine convert-legacy old_run/1024/model.ckpt converted/1024 --size 1024
  deepzine convert-legacy pretrained_models/64 converted/64 --sampling-only
"""

PROJECT_EXAMPLES = """examples:
  deepzine project pretrained_models/debian_libraries/128 my_pages/ projected/    -> projected/run-001/projected_latents.npy, ...
  deepzine project log/128 title_page.pdf projected/ --steps 400
  deepzine project log/128 my_pages/ projected/ --set project_critic_feature_weight=0
then walk through them: python wrapper.py walk.yaml with interpolation_latents: projected/run-001/projected_latents.npy
"""

PREVIEW_EXAMPLES = """examples:
  deepzine preview data/pages.hdf5                   -> data/pages_preview.png: 64 random pages
  deepzine preview data/pages.hdf5 --size 64 --num 100 --output sheet.png
"""


CONFIG_HEADER = """\
# DeepZine: the whole pipeline. Run: python wrapper.py config.yaml
# Each stage below has a switch (load_data, train, ...); switched-off stages are skipped, and any
# stage can run alone on the files an earlier run wrote. Every key is listed with its default
# unless noted; "deepzine params" prints them all. null means "not set / automatic".
# Relative paths are read from the folder you run in.
# Override any key on the command line: python wrapper.py config.yaml --set batch_size=8
"""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: stages stop as they would on Ctrl-C (a KeyboardInterrupt)."""

    def __init__(self, signal_number):
        super().__init__(f'signal {signal_number}')
        self.signal_number = signal_number


def _stop_on_signal(signal_number, frame):
    # From now on a second signal ends the process at once, without clean-up.
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, _exit_at_once)
    raise Interrupted(signal_number)


def _exit_at_once(signal_number, frame):
    os._exit(EXIT_INTERRUPTED_BASE + signal_number)


def install_signal_handlers():
    """SIGINT and SIGTERM -> Interrupted; only possible (and only needed) in the main thread."""
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, _stop_on_signal)


def setup_logging(verbose):
    """Our log lines on stderr; TensorFlow's own C++ lines only when verbose (deepzine.tensorflow_logs).

    Without this a CPU-only machine prints 'failed call to cuInit' error lines
    and oneDNN notices on every run. A TF_CPP_MIN_LOG_LEVEL the user set wins.
    """
    if not verbose:
        quiet_tensorflow()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(asctime)s %(levelname)s %(message)s', datefmt='%H:%M:%S', force=True)
    for noisy in ('h5py', 'PIL', 'matplotlib', 'urllib3', 'absl'):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _verbose_from(raw, flag):
    if flag:
        return True
    return bool(RunParameters.declared()['verbose'].convert(raw.get('verbose', False)))


# --- commands -------------------------------------------------------------------------------------------

def run_command(argv):
    parser = argparse.ArgumentParser(prog='deepzine run', description='Run the DeepZine stages a YAML config switches on.',
                                     epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='YAML config file (see config.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config key (repeatable); the value is read as YAML')
    parser.add_argument('--dry-run', action='store_true', help='print the resolved config and the plan, write nothing')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug lines and TensorFlow\'s own messages')
    args = parser.parse_args(argv)
    if not args.config:
        parser.error('a config file is required (python wrapper.py params lists the keys it may hold)')
    raw = load_yaml(args.config)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f'{args.config}: must be a mapping of key: value lines')
    raw = dict(raw or {})
    for text in args.overrides:
        key, value = parse_override(text)
        raw[key] = value
    setup_logging(_verbose_from(raw, args.verbose))
    prepared = pipeline.prepare(raw)
    if args.dry_run:
        print(pipeline.describe_plan(prepared))
        return 0
    pipeline.run(prepared)
    return 0


def params_command(argv):
    parser = argparse.ArgumentParser(prog='deepzine params', description='Print every config key, its default and meaning.')
    parser.add_argument('word', nargs='?', help='only the keys whose name or meaning contains this word')
    parser.add_argument('--markdown', action='store_true', help='as the Markdown table of the README')
    parser.add_argument('--yaml', action='store_true', help='as a complete config with every key and its meaning, '
                                                             'to start your own from (deepzine params --yaml > my.yaml)')
    args = parser.parse_args(argv)
    table = parameter_table()
    if args.yaml:
        text = describe_as_yaml(parameter_sections(), header=CONFIG_HEADER)
    else:
        text = describe(table) if args.markdown else describe_for_terminal(table, args.word)
    if not text:
        raise ConfigError(f'no key mentions {args.word!r}')
    print(text, end='' if args.yaml else '\n')
    return 0


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text}: must be a whole number') from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f'{text}: must be positive')
    return value


def _even_size(text):
    value = _positive_int(text)
    if value % 2:
        raise argparse.ArgumentTypeError(f'{text}: must be even (H.264 in yuv420p needs even sizes)')
    return value


def movie_command(argv):
    parser = argparse.ArgumentParser(
        prog='deepzine movie', epilog=MOVIE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Encode a folder of frames (e.g. interpolation_00000.png, ...) into a video, with the ffmpeg '
                    'bundled in imageio-ffmpeg.')
    parser.add_argument('frames_directory', help='folder of frames, taken in natural name order (frame_2 before frame_10)')
    parser.add_argument('movie_path', help=f'the video to write; its extension picks the container ({", ".join(movie.CONTAINERS)})')
    parser.add_argument('--fps', type=_positive_int, default=movie.DEFAULT_FPS, help=f'frames per second (default {movie.DEFAULT_FPS})')
    parser.add_argument('--size', type=_even_size, default=None,
                        help='longer side of the movie in pixels, even (as the movie_size key); default: a whole '
                             f'multiple of the frame size, at least {movie.AUTOMATIC_MIN_SIZE}')
    parser.add_argument('--crf', type=int, default=movie.DEFAULT_CRF, help=f'constant rate factor: 0 lossless, 51 worst (default {movie.DEFAULT_CRF})')
    parser.add_argument('--codec', default=None, help='ffmpeg video encoder (default: the usual one for the container)')
    parser.add_argument('--pattern', default=None,
                        help='glob for frame names, e.g. "frame_*.jpg" (default: interpolation_*.png when present, else every .png/.jpg/.jpeg)')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug lines')
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    codec = movie.check_movie_output(args.movie_path, args.codec, key='movie_path', codec_key='--codec')
    frames = movie.find_frames(args.frames_directory, args.pattern)
    movie.write_movie(frames, args.movie_path, fps=args.fps, codec=codec, crf=args.crf, movie_size=args.size)
    return 0


def convert_legacy_command(argv):
    parser = argparse.ArgumentParser(
        prog='deepzine convert-legacy', epilog=CONVERT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Convert an original DeepZine TF1 checkpoint into a DeepZine model folder '
                    '(model.json + model.ckpt) and a SavedModel (DST/saved_model).')
    parser.add_argument('source', help='folder holding model.ckpt.index and model.ckpt.data-00000-of-00001, '
                                       'or the model.ckpt prefix')
    parser.add_argument('destination', help='new model folder to write (replaced if it is already a model folder)')
    parser.add_argument('--size', type=_positive_int, default=None,
                        help='resolution the checkpoint must hold, in pixels (default: whatever it holds)')
    parser.add_argument('--sampling-only', action='store_true',
                        help='keep only the generator for sampling (smaller; cannot be fine-tuned)')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug lines and TensorFlow\'s own messages')
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    folder, saved_model = convert_legacy(args.source, args.destination, args.size,
                                         keep_training_networks=not args.sampling_only, size_name='--size')
    print(f'wrote {folder} (model.json, model.ckpt) and {saved_model}')
    return 0


def project_command(argv):
    parser = argparse.ArgumentParser(
        prog='deepzine project', epilog=PROJECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Find your own pages inside a trained model: the latent of each page, a side-by-side sheet and '
                    'the errors, in a new run folder of OUT (the project stage with these keys). Stopped, the same '
                    'command finishes the run.')
    parser.add_argument('model', metavar='MODEL', help='a model folder (log_dir/<size>), a SavedModel folder or an original checkpoint '
                                      '(as inference_model_path)')
    parser.add_argument('pages', metavar='PAGES', help='a folder of PDFs and page images (searched recursively), or one such file')
    parser.add_argument('output_directory', metavar='OUT', help='where the run folders go (as inference_output_directory)')
    parser.add_argument('--steps', type=_positive_int, default=None, help='L-BFGS steps per page (project_steps)')
    parser.add_argument('--batch', type=_positive_int, default=None, help='pages projected at once (inference_batch_size)')
    parser.add_argument('--seed', type=int, default=None, help='seed of the random start latents (random_seed)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='any other key of the project stage, e.g. project_critic_feature_weight=0 (repeatable)')
    parser.add_argument('--dry-run', action='store_true', help='print the plan, write nothing')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug lines and TensorFlow\'s own messages')
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    raw = {'project': True, 'inference_model_path': args.model, 'project_pages': args.pages,
           'inference_output_directory': args.output_directory}
    for key, value in (('project_steps', args.steps), ('inference_batch_size', args.batch), ('random_seed', args.seed)):
        if value is not None:
            raw[key] = value
    for text in args.overrides:
        key, value = parse_override(text)
        raw[key] = value
    from deepzine import pipeline
    from deepzine.sampling.project_stage import ProjectStage
    prepared = pipeline.prepare(raw, classes=[ProjectStage])
    if args.dry_run:
        print(pipeline.describe_plan(prepared))
        return 0
    pipeline.run(prepared)
    return 0


def preview_command(argv):
    parser = argparse.ArgumentParser(
        prog='deepzine preview', epilog=PREVIEW_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Write a contact sheet of pages drawn at random (seeded) from a page file: a look at the data.')
    parser.add_argument('page_file', help='a page file written by load_data (data_hdf5)')
    parser.add_argument('--size', type=_positive_int, default=None, help='page size to show (default: the largest stored)')
    parser.add_argument('--num', type=_positive_int, default=64, help='pages on the sheet (default 64)')
    parser.add_argument('--seed', type=int, default=0, help='which pages are drawn (default 0)')
    parser.add_argument('--output', default=None, help='the PNG to write (default: <page file>_preview.png)')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug lines')
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    path = write_preview(os.path.abspath(args.page_file), args.output or default_preview_path(args.page_file),
                         size=args.size, count=args.num, seed=args.seed)
    print(f'wrote {path}')
    return 0


COMMANDS = {
    'run': (run_command, 'run the stages a YAML config switches on (the default: deepzine CONFIG)'),
    'params': (params_command, 'every config key with its default and meaning (params WORD: those mentioning WORD)'),
    'movie': (movie_command, 'encode a folder of frames into a video'),
    'project': (project_command, 'find your own pages (PDFs or images) inside a trained model, for movies through them'),
    'convert-legacy': (convert_legacy_command, 'convert an original DeepZine checkpoint into a model folder and a SavedModel'),
    'preview': (preview_command, 'a contact sheet of random pages from a page file'),
}


def _top_level_help():
    lines = ['usage: deepzine [--version] [--help] COMMAND [ARGS]   (python wrapper.py works the same)', '',
             'DeepZine: a progressive GAN of book pages, from PDFs to sampled pages and latent-space movies.', '',
             'commands:']
    lines += [f'  {name:<16}{help_text}' for name, (_, help_text) in COMMANDS.items()]
    lines += ['', 'deepzine COMMAND --help shows the options and examples of a command.', '', RUN_EXAMPLES]
    return '\n'.join(lines)


def _command_for(argv):
    """(command function, its arguments); a first word that is neither a command nor a file is a typo."""
    if not argv:
        return None, argv
    first = argv[0]
    if first in COMMANDS:
        return COMMANDS[first][0], argv[1:]
    looks_like_file = os.path.exists(first) or first.lower().endswith(('.yaml', '.yml', '.json')) or os.sep in first
    if first.startswith('-') or looks_like_file:
        return run_command, argv
    close = difflib.get_close_matches(first, COMMANDS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    raise ConfigError(f"unknown command '{first}'{hint}: the commands are {', '.join(COMMANDS)}, or give a "
                      f"config file (deepzine config.yaml)")


def _as_known_fault(error):
    """A full disk met by code that does not report it itself (an OSError, an HDF5 or TensorFlow error) as the
    OutOfSpace it is; None for any other error (a bug: its traceback stays)."""
    if is_out_of_space(error):
        return OutOfSpace(getattr(error, 'filename', None) or 'an output file')
    return None


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in ([], ['-h'], ['--help']):
        print(_top_level_help())
        return 0 if argv else EXIT_CONFIG_ERROR
    if argv == ['--version']:
        print(f'deepzine {__version__}')
        return 0
    install_signal_handlers()
    try:
        command, arguments = _command_for(argv)
        return command(arguments)
    except SystemExit as exit_request:  # argparse: --help (0) or a usage error (2), already printed
        return exit_request.code if isinstance(exit_request.code, int) else EXIT_CONFIG_ERROR
    except DeepZineError as error:
        print(f'error: {error}', file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as interruption:
        print('interrupted: stopped cleanly; re-run the same command to resume', file=sys.stderr)
        return EXIT_INTERRUPTED_BASE + getattr(interruption, 'signal_number', signal.SIGINT)
    except Exception as error:
        fault = _as_known_fault(error)
        if fault is None:
            raise
        print(f'error: {fault}', file=sys.stderr)
        return fault.exit_code


if __name__ == '__main__':
    sys.exit(main())
