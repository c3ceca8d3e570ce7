"""The archive module against a fake Internet Archive on 127.0.0.1, driving the real internetarchive client."""

import hashlib
import os

import pytest

from deepzine.data import archive
from deepzine.parameters import ConfigError

from .documents import files_under, pdf_bytes
from .fake_archive import FakeArchive


def make_items(count, pages=2):
    return {f'item{number}': {f'item{number}.pdf': pdf_bytes(pages + number % 2),
                              f'item{number}_bw.pdf': pdf_bytes(1)}
            for number in range(count)}


def settings_for(fake, tmp_path, **overrides):
    values = dict(host=fake.host, secure=False, retries=2, timeout_sec=0.5, backoff_base_sec=0.001)
    values.update(overrides)
    return archive.DownloadSettings(str(tmp_path / 'pdfs'), **values)


def md5_of(path):
    with open(path, 'rb') as handle:
        return hashlib.md5(handle.read()).hexdigest()


@pytest.fixture
def fake():
    with FakeArchive('TESTCOLL', make_items(5), page_size=2, slow_sec=1.5) as server:
        yield server


def test_good_and_retried_files_arrive_intact_and_bad_ones_are_reported(fake, tmp_path):
    fake.add_fault('item1', 'item1.pdf', '500', '500')
    fake.add_fault('item2', 'item2.pdf', 'truncate')
    fake.add_fault('item3', 'item3.pdf', 'slow', 'corrupt')
    fake.add_fault('item4', None, '500')  # its metadata fails once
    fake.advertised_md5[('item0', 'item0.pdf')] = 'f' * 32  # every copy fails the checksum

    reports = {report.identifier: report for report in archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), progress=False)}

    for number in range(1, 5):
        path = tmp_path / 'pdfs' / f'item{number}' / f'item{number}.pdf'
        assert md5_of(path) == hashlib.md5(fake.items[f'item{number}'][f'item{number}.pdf']).hexdigest()
        assert reports[f'item{number}'].ok and reports[f'item{number}'].downloaded == [f'item{number}.pdf']
    assert not reports['item0'].ok and 'md5 mismatch' in reports['item0'].failed[0][1]
    assert files_under(str(tmp_path / 'pdfs' / 'item0')) == []  # no partial file counts as done
    assert not any(name.endswith('_bw.pdf') for name in files_under(str(tmp_path / 'pdfs')))
    downloads = fake.downloads()
    assert downloads.count('/download/item1/item1.pdf') == 3 and downloads.count('/download/item0/item0.pdf') == 3


def test_a_second_run_downloads_nothing_and_asks_only_the_search(fake, tmp_path):
    settings = settings_for(fake, tmp_path)
    archive.download_collection('TESTCOLL', settings, progress=False)
    before = files_under(str(tmp_path / 'pdfs'))
    requests_before = len(fake.requests)
    reports = archive.download_collection('TESTCOLL', settings, progress=False)
    later = fake.requests[requests_before:]
    assert all(path == '/services/search/v1/scrape' for _, path in later)
    assert sum(len(report.already_present) for report in reports) == 5
    assert files_under(str(tmp_path / 'pdfs')) == before


def test_files_already_present_with_the_right_md5_are_not_fetched(fake, tmp_path):
    """Without the download record (e.g. PDFs copied in by hand), size and md5 decide."""
    target = tmp_path / 'pdfs' / 'item0' / 'item0.pdf'
    target.parent.mkdir(parents=True)
    target.write_bytes(fake.items['item0']['item0.pdf'])
    wrong = tmp_path / 'pdfs' / 'item1' / 'item1.pdf'
    wrong.parent.mkdir(parents=True)
    wrong.write_bytes(b'%PDF-1.4 not the right file')
    archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), limit=2, progress=False)
    assert fake.downloads() == ['/download/item1/item1.pdf']
    assert md5_of(wrong) == hashlib.md5(fake.items['item1']['item1.pdf']).hexdigest()


def test_a_partial_file_left_by_a_killed_run_is_resumed_with_a_range_request(fake, tmp_path):
    data = fake.items['item0']['item0.pdf']
    partial = tmp_path / 'pdfs' / 'item0' / 'item0.pdf.part'
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:1000])
    archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), limit=1, progress=False)
    assert fake.range_requests == [('item0', 'item0.pdf', 'bytes=1000-')]
    assert (tmp_path / 'pdfs' / 'item0' / 'item0.pdf').read_bytes() == data
    assert not partial.exists()


def test_unsafe_identifiers_and_file_names_are_refused_and_nothing_lands_outside(fake, tmp_path):
    fake.extra_listed_files['item0'] += ['../escape.pdf', '/etc/absolute.pdf', 'sub\\windows.pdf', 'a/../../up.pdf']
    fake.extra_search_identifiers += ['../outside', 'has/slash']
    reports = archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), progress=False)
    refused = [name for report in reports for name, _ in report.refused]
    assert sorted(refused) == sorted(['../escape.pdf', '/etc/absolute.pdf', 'sub\\windows.pdf', 'a/../../up.pdf', '', ''])
    assert all(path.startswith('pdfs/item') for path in files_under(str(tmp_path)))
    assert sorted(path for path in files_under(str(tmp_path / 'pdfs')) if path.endswith('.pdf')) == [
        f'item{number}/item{number}.pdf' for number in range(5)]


@pytest.mark.parametrize('identifier, name', [('..', 'a.pdf'), ('ok', '../a.pdf'), ('ok', '/a.pdf'), ('ok', 'a\\..\\b.pdf'),
                                               ('ok', 'C:evil.pdf'), ('ok', 'a//b.pdf'), ('ok', 'line\nbreak.pdf'), ('.hidden', 'a.pdf')])
def test_safe_destination_refuses_escapes(tmp_path, identifier, name):
    with pytest.raises(archive.UnsafePathError):
        archive.safe_destination(str(tmp_path), identifier, name)


def test_safe_destination_refuses_a_symlink_planted_inside(tmp_path):
    (tmp_path / 'pdfs' / 'item').mkdir(parents=True)
    (tmp_path / 'elsewhere').mkdir()
    os.symlink(tmp_path / 'elsewhere', tmp_path / 'pdfs' / 'item' / 'link')
    with pytest.raises(archive.UnsafePathError, match='outside'):
        archive.safe_destination(str(tmp_path / 'pdfs'), 'item', 'link/a.pdf')
    assert archive.safe_destination(str(tmp_path / 'pdfs'), 'item', 'sub/a.pdf').endswith('/pdfs/item/sub/a.pdf')


def test_search_pages_with_the_cursor_caps_at_the_limit_and_passes_extra_terms(fake):
    session = archive.open_session(fake.host, secure=False)
    assert archive.search_identifiers(session, 'TESTCOLL', 'mediatype:texts') == [f'item{n}' for n in range(5)]
    assert sum(path == '/services/search/v1/scrape' for _, path in fake.requests) == 3  # pages of 2, 2, 1
    assert archive.search_identifiers(session, 'TESTCOLL', limit=3) == ['item0', 'item1', 'item2']


def test_bw_copies_are_downloaded_when_asked(fake, tmp_path):
    archive.download_collection('TESTCOLL', settings_for(fake, tmp_path, skip_bw_pdfs=False), limit=1, progress=False)
    assert files_under(str(tmp_path / 'pdfs' / 'item0')) == ['.deepzine-download.json', 'item0.pdf', 'item0_bw.pdf']


def test_an_item_without_metadata_is_reported_not_fatal(fake, tmp_path):
    fake.extra_search_identifiers.append('ghost')
    reports = archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), progress=False)
    ghost, = [report for report in reports if report.identifier == 'ghost']
    assert 'no such item' in ghost.failed[0][1]
    assert 'items with failures' in archive.summarize_downloads(reports)


def test_an_empty_or_failing_search_is_a_config_error(fake, tmp_path):
    with pytest.raises(ConfigError, match='no items found'):
        archive.download_collection('NOSUCH', settings_for(fake, tmp_path), progress=False)
    fake.add_fault('search', None, '500', '500', '500')
    with pytest.raises(ConfigError, match='search on .* failed'):
        archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), progress=False)


def test_anonymous_by_default_and_keys_from_the_environment_when_present(fake, tmp_path, monkeypatch):
    archive.download_collection('TESTCOLL', settings_for(fake, tmp_path), limit=1, progress=False)
    assert fake.authorizations == []
    monkeypatch.setenv('IA_ACCESS_KEY_ID', 'access')
    monkeypatch.setenv('IA_SECRET_ACCESS_KEY', 'secret')
    monkeypatch.setenv('IA_CONFIG_FILE', str(tmp_path / 'no-such-ia.ini'))
    archive.download_collection('TESTCOLL', settings_for(fake, tmp_path / 'with-keys'), limit=1, progress=False)
    assert fake.authorizations and set(fake.authorizations) == {'LOW access:secret'}
