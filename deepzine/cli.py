"""Command line: `deepzine [run] config.yaml`, `deepzine params`, `deepzine movie`, `deepzine convert-legacy`.

Config and input problems print one line and exit 2, before any file is
written. Ctrl-C (SIGINT) and SIGTERM (what `kill`, job schedulers and
preemptible machines send) raise `Interrupted` in the main thread: the running
stage keeps what it has finished, then the process exits 130 or 143 (128 + the
signal number). A second signal while stopping exits at once; every file is
written under a temporary name and renamed, so that corrupts nothing either.
"""

import argparse
import logging
import os
import signal
import sys

from deepzine.parameters import ConfigError, describe, load_yaml, parse_override

EXIT_CONFIG_ERROR = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130; SIGTERM gives 143


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
    os._exit(128 + signal_number)


def install_signal_handlers():
    """SIGINT and SIGTERM -> Interrupted; only possible (and only needed) in the main thread."""
    import threading
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, _stop_on_signal)

RUN_EXAMPLES = """examples:
  python wrapper.py config.yaml                      run the stages config.yaml switches on
  python wrapper.py config.yaml --dry-run            print the resolved config and the plan, do nothing
  python wrapper.py config.yaml --set train=false --set inference_output_num=16
  python wrapper.py --list-params                    every key with its default and meaning
  deepzine movie FRAMES_DIR out.mp4 --fps 30         frames -> MP4
  deepzine convert-legacy pretrained_models/256 converted/256
"""


def setup_logging(verbose):
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # before TensorFlow is imported anywhere
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format='%(asctime)s %(levelname)s %(message)s', datefmt='%H:%M:%S')


def run_command(argv):
    parser = argparse.ArgumentParser(prog='deepzine run', description='Run the DeepZine stages a YAML config switches on.',
                                     epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', nargs='?', help='YAML config file (see config.yaml)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config key (repeatable); the value is read as YAML')
    parser.add_argument('--dry-run', action='store_true', help='print the resolved config and the plan, write nothing')
    parser.add_argument('--list-params', action='store_true', help='print every config key with default and meaning')
    parser.add_argument('-v', '--verbose', action='store_true', help='debug logging')
    args = parser.parse_args(argv)
    if args.list_params:
        return params_command([])
    if not args.config:
        parser.error('a config file is required (or --list-params)')
    setup_logging(args.verbose)
    from deepzine import pipeline
    raw = load_yaml(args.config)
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f'{args.config}: must be a mapping of key: value lines')
    raw = dict(raw or {})
    for text in args.overrides:
        key, value = parse_override(text)
        raw[key] = value
    config, stages = pipeline.prepare(raw)
    if args.dry_run:
        print(pipeline.describe_plan(config, stages))
        return 0
    pipeline.run(config, stages)
    return 0


def params_command(argv):
    parser = argparse.ArgumentParser(prog='deepzine params', description='Print every config key, its default and meaning.')
    parser.parse_args(argv)
    from deepzine.pipeline import parameter_table
    print(describe(parameter_table()))
    return 0


def movie_command(argv):
    setup_logging(False)
    from deepzine.sampling.movie import movie_command as command
    return command(argv)


def convert_legacy_command(argv):
    setup_logging(False)
    from deepzine.model.legacy import convert_legacy_command as command
    return command(argv)


COMMANDS = {'run': run_command, 'params': params_command, 'movie': movie_command,
            'convert-legacy': convert_legacy_command}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(argv[0]) if argv else None
    if command:
        argv = argv[1:]
    install_signal_handlers()
    try:
        return (command or run_command)(argv)
    except ConfigError as error:
        print(f'error: {error}', file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except KeyboardInterrupt as interruption:
        print('interrupted: stopped cleanly; re-run the same command to resume', file=sys.stderr)
        return 128 + getattr(interruption, 'signal_number', signal.SIGINT)


if __name__ == '__main__':
    sys.exit(main())
