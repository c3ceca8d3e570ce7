"""Writing outputs safely: under a temporary name beside the target, renamed when complete, readable by others.

Every file and folder DeepZine writes goes through here, so a run killed at
any instant leaves either the old complete output or the new complete one,
never half of one, and a disk that fills up is reported as one line naming
what was being written. One temporary name for everything:
`.<name>.partial-<pid>-<random>[suffix]` beside `<name>`. It starts with a dot,
so folder listings (frames for a movie, page images, documents to pack) skip
it, and `remove_leftovers` finds every one a killed writer left.

`durable=True` also flushes the new file to the disk before the rename and the
folder entry after it: without that, a power cut shortly after a rename can
leave the new name pointing at lost data. It is for what a re-run counts on
and cannot cheaply make again (the page file and its committed segments, the
segment folder's run record, downloaded PDFs); outputs that are simply
written again (pages, frames, previews) skip the cost.

Not `tempfile.mkstemp`/`mkdtemp`: they create mode 0600/0700, which the rename
keeps, and outputs in a shared folder would be private to their writer.

Three other names are deliberate, and are not leftovers to remove:
- `<file>.part` (RESUMABLE_DOWNLOAD_SUFFIX): a download in progress, which the
  archive client resumes with a Range request (deepzine.data.archive);
- `<data_hdf5>.partial/` (SEGMENT_FOLDER_SUFFIX): the committed segments of an
  interrupted load_data, which the next run resumes (deepzine.data.writer);
- TensorFlow's own `ckpt-N_temp` folders (TENSORFLOW_TEMPORARY_SUFFIX), where
  it writes a checkpoint before renaming it: removed by the trainer's clean-up.
"""

import contextlib
import errno
import json
import os
import secrets
import shutil

import yaml

from deepzine.errors import RunFailed

PARTIAL_MARK = '.partial'
RESUMABLE_DOWNLOAD_SUFFIX = '.part'
SEGMENT_FOLDER_SUFFIX = '.partial'
TENSORFLOW_TEMPORARY_SUFFIX = '_temp'
_OUT_OF_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, 'EDQUOT', errno.ENOSPC)}
_OUT_OF_SPACE_TEXTS = ('no space left on device', 'disk quota exceeded', 'file too large')


class OutOfSpace(RunFailed):
    """The disk filled up while writing `path`: the CLI prints one line and exits 1; a re-run continues."""

    def __init__(self, path, detail=''):
        self.path = os.fspath(path)
        super().__init__(f'disk full while writing {self.path}{f" ({detail})" if detail else ""}: free some space '
                         f'on that disk and re-run the same command to continue')


def is_out_of_space(error):
    """True for an OSError with ENOSPC/EDQUOT, or any error whose message says so (TensorFlow, HDF5)."""
    if isinstance(error, OSError) and error.errno in _OUT_OF_SPACE_ERRNOS:
        return True
    text = str(error).lower()
    return any(marker in text for marker in _OUT_OF_SPACE_TEXTS)


def _nearly_full(path, margin_bytes=1 << 20):
    """True when the file system holding `path` (or its nearest existing folder) has less than a MiB left."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    try:
        return shutil.disk_usage(folder).free < margin_bytes
    except OSError:
        return False


@contextlib.contextmanager
def reporting_out_of_space(path):
    """Turn a full disk inside the block into OutOfSpace(path).

    Some writers report a full disk without its errno (numpy: '640000 requested
    and 47072 written'), so a failed write on a disk with almost no space left
    counts too.
    """
    try:
        yield
    except OutOfSpace:
        raise
    except Exception as error:
        if is_out_of_space(error) or (isinstance(error, OSError) and _nearly_full(path)):
            raise OutOfSpace(path) from None
        raise


def require_free_space(path, bytes_needed, margin_bytes=1 << 20):
    """OutOfSpace(path) unless the disk holding `path` has bytes_needed (plus a margin) free.

    For writers that must not meet a full disk half-way: HDF5 cannot be closed
    cleanly after a failed write (the library crashes), so the page writer asks
    before each write instead.
    """
    folder = os.path.abspath(path)
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    if free < bytes_needed + margin_bytes:
        raise OutOfSpace(path, f'{free / 2 ** 20:.1f} MiB free, about {(bytes_needed + margin_bytes) / 2 ** 20:.1f} '
                               f'MiB needed')


def temporary_path_beside(path, suffix=''):
    """A hidden, unique name in the folder of `path`, to write into before renaming to `path` (see `commit`)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f'.{name}{PARTIAL_MARK}-{os.getpid()}-{secrets.token_hex(4)}{suffix}')


def is_leftover(name, of=None):
    """True for a temporary name of `temporary_path_beside` (of the file `of` only, when given)."""
    name = os.path.basename(name)
    prefix = f'.{of}{PARTIAL_MARK}-' if of is not None else '.'
    return name.startswith(prefix) and PARTIAL_MARK in name


def remove_leftovers(folder, names=None):
    """Delete what killed writers left in `folder`; returns how many.

    names: only the temporaries of these file names (for a folder that other
    runs may be writing into at the same time); None: every temporary.
    """
    try:
        found = os.listdir(folder)
    except OSError:
        return 0
    leftovers = [name for name in found
                 if (is_leftover(name) if names is None else any(is_leftover(name, of) for of in names))]
    for name in leftovers:
        _remove(os.path.join(folder, name))
    return len(leftovers)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def _flush_to_disk(path):
    """fsync a file, or a folder (its entries: a rename inside it)."""
    flags = os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if os.path.isdir(path) else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def commit(temporary, path, durable=False):
    """Give a finished temporary file its final name `path`; durable: on the disk before and after the rename."""
    if durable:
        _flush_to_disk(temporary)
    os.replace(temporary, path)
    if durable:
        _flush_to_disk(os.path.dirname(os.path.abspath(path)))


@contextlib.contextmanager
def atomic_path(path, suffix='', durable=False):
    """Yield a temporary path beside `path`; when the block ends normally it is renamed to `path`.

    For writers that want a file name (ffmpeg, Pillow, h5py). `suffix` keeps the
    extension that some of them choose the format by. On any error the
    temporary file is removed and the old `path`, if any, stays as it was.
    """
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = temporary_path_beside(path, suffix)
    try:
        with reporting_out_of_space(path):
            yield temporary
            commit(temporary, path, durable)
    finally:
        if os.path.lexists(temporary):
            _remove(temporary)


def write_atomically(path, write_to_handle, durable=False):
    """Call write_to_handle(binary file) on a temporary file beside `path`, then rename it to `path`."""
    with atomic_path(path, durable=durable) as temporary:
        with open(temporary, 'xb') as handle:
            write_to_handle(handle)
    return path


def write_text(path, text, durable=False):
    return write_atomically(path, lambda handle: handle.write(text.encode('utf-8')), durable)


def write_yaml(path, data):
    return write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def write_json(path, data, durable=False):
    return write_text(path, json.dumps(data, indent=2, default=str) + '\n', durable)


@contextlib.contextmanager
def staged_folder(folder):
    """Yield an empty temporary folder beside `folder`; when the block ends normally it replaces `folder` whole.

    Readers see the old folder or the new one, never a mix: the old one is moved
    aside (to another temporary name), the new one renamed in, the old removed.
    """
    folder = os.path.abspath(folder)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = temporary_path_beside(folder)
    os.mkdir(staging)
    try:
        with reporting_out_of_space(folder):
            yield staging
        if os.path.exists(folder):
            retired = temporary_path_beside(folder, '-old')
            os.replace(folder, retired)
            os.replace(staging, folder)
            _remove(retired)
        else:
            os.replace(staging, folder)
    finally:
        if os.path.lexists(staging):
            _remove(staging)
