"""The kinds of error DeepZine stops on, each with the exit code the command line gives it.

    0    done
    1    RunFailed: a fault met while working (a full disk, a page file damaged
         on disk); what was finished is kept, and the same command continues
         once the cause is mended
    2    ConfigError: the config or an input file is wrong, found before anything
         was written (argparse usage errors exit 2 as well)
    3    TrainingDiverged: training went wrong past what the collapse guard can
         repair; the run stopped at its last good checkpoint
    130  Ctrl-C (SIGINT), 143 SIGTERM: stopped cleanly, the same command resumes

Every error here is printed by the command line as one line, without a
traceback; any other exception is a bug and keeps its traceback.
"""


class DeepZineError(Exception):
    """An error the command line prints as one line and ends with `exit_code`."""
    exit_code = 1


class ConfigError(DeepZineError):
    """A problem with the user's configuration or input files, found before anything was written."""
    exit_code = 2


class RunFailed(DeepZineError):
    """A fault met while a stage was working; re-running the same command continues once it is mended."""
    exit_code = 1


class TrainingDiverged(RunFailed):
    """Training went wrong past repair (a NaN without the collapse guard, or the guard out of retries); the last good
    checkpoint is kept, and running again continues from it."""
    exit_code = 3


EXIT_INTERRUPTED_BASE = 128  # + the signal number: 130 for SIGINT, 143 for SIGTERM
