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


def test_leftovers_of_one_file_are_found_without_touching_the_others(tmp_path):
    mine, other = files.temporary_path_beside(tmp_path / 'pages.hdf5'), files.temporary_path_beside(tmp_path / 'x.png')
    for path in (mine, other):
        open(path, 'w').close()
    assert files.remove_leftovers(tmp_path, ['pages.hdf5']) == 1
    assert os.listdir(tmp_path) == [os.path.basename(other)]


def test_every_temporary_a_kill_can_leave_is_one_the_clean_up_finds(tmp_path, monkeypatch):
    """At every rename of a whole load_data run (downloads and their records, page images, the run record, segments,
    the merge into an existing file, the preview) and of the folder helpers, each name in the folders written is an
    output the run keeps, a name `remove_leftovers` removes, or one of the deliberate names that a re-run resumes."""
    from tests.data.documents import pdf_bytes
    from tests.data.fake_archive import FakeArchive
    from tests.stages import prepare_stage
    from deepzine.data.stage import LoadDataStage
    seen, replace = set(), os.replace

    def note_every_name(*paths):
        for folder in {os.path.dirname(os.path.abspath(path)) for path in paths}:
            seen.update(os.path.join(folder, name) for name in os.listdir(folder))

    def noting_every_name(source, target):
        note_every_name(source, target)
        replace(source, target)
        note_every_name(source, target)

    monkeypatch.setattr(os, 'replace', noting_every_name)
    items = {'first': {'first.pdf': pdf_bytes(2)}, 'second': {'second.pdf': pdf_bytes(1)}}
    with FakeArchive('COLL', items) as fake:
        for item_limit in (1, 2):  # the second run adds to the page file: a merge with the old file
            prepare_stage(LoadDataStage, load_data=True, internetarchive_collection='COLL', internetarchive_host=fake.host,
                          internetarchive_secure=False, pdf_num=item_limit, pdf_directory=str(tmp_path / 'pdfs'),
                          data_hdf5=str(tmp_path / 'data' / 'pages.hdf5'), data_output_size=16, conversion_workers=1,
                          keep_page_images=True, image_directory=str(tmp_path / 'images')).run()
    for version in ('1', '2'):  # the second replaces the first: the old folder is moved aside first
        with files.staged_folder(tmp_path / 'model') as staging:
            files.write_text(os.path.join(staging, 'weights.txt'), version)
    files.write_json(tmp_path / 'run.json', {}, durable=True)

    kept = {os.path.join(root, name) for root, folders, names in os.walk(tmp_path) for name in folders + names}
    segment_folder = str(tmp_path / 'data' / 'pages.hdf5') + files.SEGMENT_FOLDER_SUFFIX
    gone = sorted(seen - kept)
    resumable = [path for path in gone if path.endswith(files.RESUMABLE_DOWNLOAD_SUFFIX) or path == segment_folder
                 or (os.path.dirname(path) == segment_folder and not os.path.basename(path).startswith('.'))]
    assert sorted(os.path.basename(path) for path in resumable) == ['first.pdf.part', 'pages.hdf5.partial', 'run.json',
                                                                      'second.pdf.part', 'segment-000001.hdf5']
    temporaries = [path for path in gone if path not in resumable]
    # each is a leftover, or inside one (a staged folder's files go with it)
    outermost = [next((part for part in os.path.relpath(path, tmp_path).split(os.sep) if files.is_leftover(part)), path)
                 for path in temporaries]
    assert all(files.is_leftover(name) for name in outermost), temporaries
    kinds = {name.split(files.PARTIAL_MARK)[0] for name in outermost}
    assert kinds == {'..deepzine-download.json', '.first-0001.png', '.first-0002.png', '.second-0001.png', '.run.json',
                     '.segment-000001.hdf5', '.pages.hdf5', '.pages_preview.png', '.model'}  # every writer was seen
