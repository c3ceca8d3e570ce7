"""The page file: schema, writer protocol (partial name, commits, resume, incremental), reader and tf.data pipeline."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from deepzine.data.squaring import build_pyramid
from deepzine.data.store import PageStore, page_dataset, shuffled_index_function
from deepzine.data.writer import PageWriter
from deepzine.files import temporary_path_beside
from deepzine.parameters import ConfigError

SCHEMA = {'output_size': 16, 'channels': 3, 'square_mode': 'stretch', 'pdf_dpi': 100, 'pdf_conversion_program': 'pdfium'}


def constant_pages(values, size=16, channels=3):
    """Pages filled with one value each, so a read page tells which page it was."""
    return build_pyramid(np.stack([np.full((size, size, channels), value, np.uint8) for value in values]))


def add_document(writer, name, values):
    writer.append_pages(constant_pages(values), [(name, f'{name}.pdf', number) for number in range(1, len(values) + 1)])
    writer.commit_document(f'{name}.pdf', 1000, len(values), 0, 'packed')


def new_writer(path, schema=SCHEMA, **options):
    """Every document committed on its own (commit_interval_sec 0), as a slow real run would."""
    return PageWriter(path, schema, {'config': 'data_output_size: 16\n'}, commit_interval_sec=0, **options)


def first_values(path, size=16):
    with PageStore(path) as store:
        return [int(page[0, 0, 0]) for page in store.read(size, range(store.page_count))]


@pytest.fixture
def page_file(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'first', [10, 20, 30])
    add_document(writer, 'second', [40, 50])
    writer.finish()
    return path


def test_finished_file_has_the_schema_the_trainer_reads(page_file):
    with h5py.File(page_file, 'r') as handle:
        for size in (4, 8, 16):
            dataset = handle[f'data_{size}']
            assert dataset.shape == (5, size, size, 3) and dataset.dtype == np.uint8
            assert dataset.chunks == (1, size, size, 3) and dataset.compression == 'gzip' and dataset.compression_opts == 1
        assert 'data_32' not in handle
        assert handle.attrs['format_version'] == 1 and handle.attrs['complete']
        assert list(handle['documents/first_page_index'][:]) == [0, 3]
        assert list(handle['documents/pages_written'][:]) == [3, 2]
    assert os.listdir(os.path.dirname(page_file)) == ['pages.hdf5']  # no segment folder or temporary file left
    with PageStore(page_file) as store:
        assert store.sizes == [4, 8, 16] and store.channels == 3 and store.page_count == 5
        assert store.attributes['square_mode'] == 'stretch' and store.attributes['config'] == 'data_output_size: 16\n'
        assert store.read(16, [4, 0]).dtype == np.uint8
        assert [int(page[0, 0, 0]) for page in store.read(4, [4, 0, 2])] == [50, 10, 30]
        assert store.provenance([0, 4]) == [('first', 'first.pdf', 1), ('second', 'second.pdf', 2)]


@pytest.mark.parametrize('compression, filter_name', [('lzf', 'lzf'), ('none', None)])
def test_compression_choices(tmp_path, compression, filter_name):
    path = str(tmp_path / 'pages.hdf5')
    writer = PageWriter(path, SCHEMA, {}, compression)
    add_document(writer, 'only', [1])
    writer.finish()
    with h5py.File(path, 'r') as handle:
        assert handle['data_16'].compression == filter_name


def test_pages_compressed_by_the_workers_are_stored_as_gzip_chunks(tmp_path):
    import zlib
    path = str(tmp_path / 'pages.hdf5')
    rng = np.random.default_rng(0)
    levels = build_pyramid(rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    chunks = {size: [zlib.compress(page.tobytes(), 1) for page in pages] for size, pages in levels.items()}
    writer = new_writer(path)
    writer.append_pages(chunks, [('doc', 'doc.pdf', 1), ('doc', 'doc.pdf', 2)], compressed=True)
    writer.commit_document('doc.pdf', 10, 2, 0, 'packed')
    writer.finish()
    with PageStore(path) as store:
        for size in (4, 8, 16):
            assert (store.read(size, [0, 1]) == levels[size]).all()
    with pytest.raises(ValueError, match='need gzip'):
        PageWriter(str(tmp_path / 'lzf.hdf5'), SCHEMA, {}, 'lzf').append_pages(chunks, [('d', 'd.pdf', 1)] * 2, compressed=True)


def test_require_size_names_the_file_the_sizes_and_the_fix(page_file):
    with PageStore(page_file) as store:
        store.require_size(8)
        with pytest.raises(ConfigError) as error:
            store.require_size(128)
    assert str(error.value) == (f'data_hdf5={page_file} holds sizes 4..16 but training needs 128: '
                                're-run load_data with data_output_size: 128')


def test_reader_refuses_what_is_not_a_finished_deepzine_file(tmp_path):
    with pytest.raises(ConfigError, match='file not found; run load_data'):
        PageStore(str(tmp_path / 'absent.hdf5'))
    (tmp_path / 'noise.hdf5').write_bytes(b'not hdf5 at all' * 10)
    with pytest.raises(ConfigError, match='not a readable HDF5 file'):
        PageStore(str(tmp_path / 'noise.hdf5'))
    with h5py.File(tmp_path / 'other.hdf5', 'w') as handle:
        handle['x'] = np.zeros(3)
    with pytest.raises(ConfigError, match='not a DeepZine page file'):
        PageStore(str(tmp_path / 'other.hdf5'))
    with h5py.File(tmp_path / 'original.hdf5', 'w') as handle:  # the layout of the 2018 PyTables file
        handle.attrs['PYTABLES_FORMAT_VERSION'] = '2.1'
        handle['imagenames'] = np.array([[b'page-1.png']])
        handle['data_4'] = np.zeros((1, 4, 4, 3), np.float32)
    with pytest.raises(ConfigError, match='ORIGINAL DeepZine .* rebuild it with load_data'):
        PageStore(str(tmp_path / 'original.hdf5'))
    with h5py.File(tmp_path / 'unfinished.hdf5', 'w') as handle:
        handle.attrs.update({'format': 'deepzine-pages', 'format_version': 1, 'complete': False})
    with pytest.raises(ConfigError, match='not finished'):
        PageStore(str(tmp_path / 'unfinished.hdf5'))


def test_an_interrupted_run_leaves_committed_segments_and_no_finished_looking_file(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'first', [1, 2])
    writer.append_pages(constant_pages([99]), [('second', 'second.pdf', 1)])  # never committed
    writer.close()  # as if stopped here
    assert not os.path.exists(path)
    assert sorted(os.listdir(path + '.partial')) == ['run.json', 'segment-000001.hdf5']
    with pytest.raises(ConfigError, match='interrupted load_data'):
        PageStore(path)


def test_resume_keeps_committed_documents_and_drops_the_rest(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'first', [1, 2])
    writer.append_pages(constant_pages([99]), [('second', 'second.pdf', 1)])
    writer.close()
    with open(temporary_path_beside(os.path.join(path + '.partial', 'segment-000002.hdf5')), 'wb') as handle:
        handle.write(b'half-written segment of a killed run')
    resumed = new_writer(path)
    assert resumed.finished_documents == {('pages', 'first.pdf'): 1000} and resumed.resumed_documents == 1
    assert sorted(os.listdir(path + '.partial')) == ['run.json', 'segment-000001.hdf5']
    add_document(resumed, 'second', [3])
    resumed.finish()
    assert first_values(path) == [1, 2, 3]


def test_incremental_run_keeps_the_old_file_readable_and_refuses_other_settings(page_file):
    with pytest.raises(ConfigError, match="square_mode: file has 'stretch', config gives 'pad'"):
        new_writer(page_file, {**SCHEMA, 'square_mode': 'pad'})
    writer = new_writer(page_file)
    assert set(writer.finished_documents) == {('pages', 'first.pdf'), ('pages', 'second.pdf')}
    add_document(writer, 'third', [60])
    assert first_values(page_file) == [10, 20, 30, 40, 50]  # training can go on reading meanwhile
    writer.finish()
    assert first_values(page_file) == [10, 20, 30, 40, 50, 60]
    with PageStore(page_file) as store:
        assert store.provenance([5]) == [('third', 'third.pdf', 1)]


def test_incremental_run_with_another_compression_recompresses_the_old_pages(page_file):
    writer = PageWriter(page_file, SCHEMA, {}, 'lzf', commit_interval_sec=0)
    add_document(writer, 'third', [60])
    writer.finish()
    assert first_values(page_file, size=4) == [10, 20, 30, 40, 50, 60]
    with h5py.File(page_file, 'r') as handle:
        assert handle['data_16'].compression == 'lzf'


def test_overwrite_ignores_the_finished_file(page_file):
    rebuilt = new_writer(page_file, overwrite=True)
    assert rebuilt.finished_documents == {}
    add_document(rebuilt, 'new', [7])
    rebuilt.finish()
    assert first_values(page_file) == [7]


def test_an_interrupted_rebuild_is_not_merged_into_the_old_file(page_file):
    rebuilding = new_writer(page_file, overwrite=True)
    add_document(rebuilding, 'first', [11, 21, 31])  # the same document, rebuilt
    rebuilding.close()
    adding = new_writer(page_file)  # overwrite: false now
    assert adding.resumed_documents == 0
    add_document(adding, 'third', [60])
    adding.finish()
    assert first_values(page_file) == [10, 20, 30, 40, 50, 60]


def test_a_partial_run_with_other_settings_is_discarded(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    add_document(writer, 'first', [1])
    writer.close()
    other = new_writer(path, {**SCHEMA, 'channels': 1})
    assert other.finished_documents == {}


def test_finishing_without_pages_is_an_error_and_leaves_nothing(tmp_path):
    path = str(tmp_path / 'pages.hdf5')
    writer = new_writer(path)
    writer.commit_document('broken.pdf', 10, 0, 0, 'skipped: is an empty file')
    with pytest.raises(ConfigError, match='no usable pages'):
        writer.finish()
    assert os.listdir(tmp_path) == []


def test_page_dataset_yields_scaled_shuffled_batches_covering_every_page(page_file):
    import tensorflow as tf
    dataset = page_dataset(page_file, 8, batch_size=2, seed=3, repeat=False, drop_remainder=False)
    batches = [pages for pages, _ in dataset]
    assert [tuple(batch.shape) for batch in batches] == [(2, 8, 8, 3), (2, 8, 8, 3), (1, 8, 8, 3)]
    assert batches[0].dtype == tf.float32
    values = np.concatenate([batch.numpy()[:, 0, 0, 0] for batch in batches])
    assert sorted(np.round((values + 1) * 127.5).astype(int)) == [10, 20, 30, 40, 50]
    assert values.min() >= -1 and values.max() <= 1

    repeated = page_dataset(page_file, 16, batch_size=5, seed=1)
    assert repeated.element_spec[0].shape.as_list() == [5, 16, 16, 3]
    assert repeated.element_spec[1].shape.as_list() == [5] and repeated.element_spec[1].dtype == tf.int32
    epochs = [tuple(np.round((batch.numpy()[:, 0, 0, 0] + 1) * 127.5).astype(int)) for batch, _ in repeated.take(6)]
    assert all(sorted(epoch) == [10, 20, 30, 40, 50] for epoch in epochs)
    assert len(set(epochs)) > 1  # reshuffled every epoch


def test_reads_from_several_threads_stay_right_across_reopenings(page_file, monkeypatch):
    """The store reopens the file every REOPEN_EVERY_PAGES pages (HDF5's per-chunk state would grow otherwise)."""
    import threading
    from deepzine.data import store as store_module
    monkeypatch.setattr(store_module, 'REOPEN_EVERY_PAGES', 7)
    errors = []
    with PageStore(page_file) as store:
        opened = store._file

        def read_many(seed):
            rng = np.random.default_rng(seed)
            for _ in range(50):
                indices = rng.integers(0, 5, 3)
                values = store.read(8, indices)[:, 0, 0, 0]
                if list(values) != [10 * (index + 1) for index in indices]:
                    errors.append((list(indices), list(values)))

        threads = [threading.Thread(target=read_many, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [] and store._file is not opened


def test_shuffled_indices_are_a_new_permutation_each_epoch_and_follow_the_seed():
    import tensorflow as tf
    count = 1001
    positions = tf.range(3 * count, dtype=tf.int64)
    indices = tf.map_fn(shuffled_index_function(count, seed=5), positions).numpy().reshape(3, count)
    assert all(sorted(epoch) == list(range(count)) for epoch in indices)
    assert not np.array_equal(indices[0], indices[1]) and not np.array_equal(indices[0], np.arange(count))
    again = tf.map_fn(shuffled_index_function(count, seed=5), positions[:count]).numpy()
    np.testing.assert_array_equal(again, indices[0])
    other = tf.map_fn(shuffled_index_function(count, seed=6), positions[:count]).numpy()
    assert not np.array_equal(other, indices[0])


def test_page_dataset_checks_size_and_batch(page_file):
    with pytest.raises(ConfigError, match='training needs 32'):
        page_dataset(page_file, 32, batch_size=2)
    with pytest.raises(ConfigError, match='fewer than one batch of 8'):
        page_dataset(page_file, 16, batch_size=8)


DISTRIBUTED_CHECK = '''
import sys
import tensorflow as tf
cpu, = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from deepzine.data.store import page_dataset
strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
dataset = strategy.experimental_distribute_dataset(page_dataset(sys.argv[1], 8, batch_size=4, seed=0))

@tf.function
def step(batch):
    return strategy.run(lambda pages, numbers: tf.reduce_sum(tf.ones_like(pages[:, 0, 0, 0])), args=batch)

iterator = iter(dataset)
counts = [int(strategy.reduce('SUM', step(next(iterator)), axis=None)) for _ in range(3)]
print('pages per step', counts, flush=True)
'''  # the iterator stays alive until exit, as a caller's may: the exit must not hang (tests/data/test_exit_gate.py)


def test_page_dataset_works_under_a_distribution_strategy(page_file):
    """Two logical CPUs as two replicas, in a fresh process (logical devices must be set before TF starts)."""
    result = subprocess.run([sys.executable, '-c', DISTRIBUTED_CHECK, page_file], capture_output=True, text=True,
                            timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'})
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'pages per step [4, 4, 4]' in result.stdout
