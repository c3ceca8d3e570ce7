"""deepzine.files: outputs appear whole or not at all, readable by others, and a full disk is named in one line."""

import errno
import os

import pytest

from deepzine import files


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_written_files_and_folders_have_normal_permissions(tmp_path, umask_022):
    files.write_yaml(tmp_path / 'a.yaml', {'key': 1})
    files.write_json(tmp_path / 'b.json', {'key': 1})
    with files.staged_folder(tmp_path / 'model') as staging:
        files.write_text(os.path.join(staging, 'inside.txt'), 'x')
    assert os.stat(tmp_path / 'a.yaml').st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / 'b.json').st_mode & 0o777 == 0o644
    assert os.stat(tmp_path / 'model').st_mode & 0o777 == 0o755
    assert sorted(os.listdir(tmp_path)) == ['a.yaml', 'b.json', 'model']


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    files.write_text(tmp_path / 'page.txt', 'old')

    def fail_half_way(handle):
        handle.write(b'new, but')
        raise RuntimeError('stopped')

    with pytest.raises(RuntimeError):
        files.write_atomically(tmp_path / 'page.txt', fail_half_way)
    assert (tmp_path / 'page.txt').read_text() == 'old' and os.listdir(tmp_path) == ['page.txt']


def test_a_staged_folder_replaces_the_old_one_whole_or_not_at_all(tmp_path):
    with files.staged_folder(tmp_path / 'model') as staging:
        files.write_text(os.path.join(staging, 'v1.txt'), '1')
    with pytest.raises(KeyboardInterrupt):
        with files.staged_folder(tmp_path / 'model') as staging:
            files.write_text(os.path.join(staging, 'v2.txt'), '2')
            raise KeyboardInterrupt
    assert os.listdir(tmp_path / 'model') == ['v1.txt'] and os.listdir(tmp_path) == ['model']
    with files.staged_folder(tmp_path / 'model') as staging:
        files.write_text(os.path.join(staging, 'v3.txt'), '3')
    assert os.listdir(tmp_path / 'model') == ['v3.txt'] and os.listdir(tmp_path) == ['model']


def test_a_full_disk_becomes_one_error_naming_the_path(tmp_path):
    with pytest.raises(files.OutOfSpace, match=r'disk full while writing .*movie\.mp4: free some space on that disk '
                                               r'and re-run the same command to continue'):
        with files.atomic_path(tmp_path / 'movie.mp4'):
            raise OSError(errno.ENOSPC, 'No space left on device')
    assert files.is_out_of_space(RuntimeError('ResourceExhaustedError: ... No space left on device'))
    assert not files.is_out_of_space(OSError(errno.ENOENT, 'No such file'))
    assert os.listdir(tmp_path) == []


def test_leftovers_of_killed_writers_are_found_by_their_names(tmp_path):
    leftover = files.temporary_path_beside(tmp_path / 'inference_00001.png')
    open(leftover, 'w').close()
    (tmp_path / 'inference_00000.png').write_bytes(b'kept')
    assert files.remove_leftovers(tmp_path) == 1
    assert os.listdir(tmp_path) == ['inference_00000.png']
