"""The report shows only what a work dir can vouch for: a result of another
checkpoint copied in, a result file that is not JSON, a result that fills
none of its columns are named under "Not shown", never printed as this
run's; a malformed ``suite.json`` is one line (exit status 2); a failed
result without a reason is listed; two work dirs of one config get two
labels and the dagger goes on the row it belongs to."""
import json
import shutil

from mmbcssl.cli import report as report_cli
from mmbcssl.suite.report import load_run, markdown, write_report

CONFIG = 'tests/data/configs/tiny_classifier.py'
SHA_A = 'a' * 64
SHA_B = 'b' * 64


def _knn(sha, value=42.0, ks=(10, 20), protocol_id='p-knn'):
    """A k-NN result as the suite writes it: the SHA of the checkpoint it
    ran on in its request and in its fingerprint."""
    metrics = {f'knn/k{k}_top1': value for k in ks}
    return dict(status='ok', name='knn', metrics=metrics,
                fingerprint=dict(
                    protocol_id=protocol_id,
                    protocol=dict(ks=list(ks), temperature=0.07),
                    checkpoint=dict(file='/runs/w.pth', sha256=sha,
                                    weights='teacher')),
                request=dict(type='KNN', name='knn', config=CONFIG,
                             checkpoint_sha256=sha))


def _work_dir(root, sha, results):
    (root / 'results').mkdir(parents=True)
    (root / 'suite.json').write_text(json.dumps(dict(
        config=CONFIG, checkpoint='/runs/w.pth', checkpoint_sha256=sha,
        pretraining=dict(weights='a run of this code'))))
    for name, result in results.items():
        (root / 'results' / f'{name}.json').write_text(
            result if isinstance(result, str) else json.dumps(result))
    return str(root)


def _table_lines(text):
    return [s for s in text.split('## Not shown')[0].splitlines()
            if s.startswith('| ')]


def test_a_result_of_another_checkpoint_copied_in_is_not_shown(tmp_path):
    mine = _work_dir(tmp_path / 'a', SHA_A, {})
    other = _work_dir(tmp_path / 'b', SHA_B, {'knn': _knn(SHA_B, 77.0)})
    shutil.copy(tmp_path / 'b' / 'results' / 'knn.json',
                tmp_path / 'a' / 'results' / 'knn.json')
    row = load_run(mine)
    assert 'knn_top1' not in row.values
    ((name, why), ) = row.not_shown
    assert name == 'knn' and 'bbbbbbbbbbbb' in why and 'aaaaaaaaaaaa' in why
    text = markdown([row, load_run(other)])
    # 77.00 is only on the other run's row (of each table with k-NN)
    lines = [s for s in _table_lines(text) if '77.00' in s]
    assert lines and all('@ bbbbbbbb' in s for s in lines)
    assert '- not shown: tiny_classifier @ aaaaaaaa / knn: made with ' \
        'checkpoint SHA-256 bbbbbbbbbbbb' in text


def test_a_malformed_result_is_named_not_dropped(tmp_path):
    work = _work_dir(tmp_path / 'a', SHA_A, {
        'knn': _knn(SHA_A), 'linear': '{"status": "ok", "metrics": {'})
    row = load_run(work)
    assert row.values == {'knn_top1': 42.0, 'knn_top1_k10': 42.0}
    ((name, why), ) = row.not_shown
    assert name == 'linear' and why.startswith('not valid JSON')
    assert '- not shown: tiny_classifier @ aaaaaaaa / linear: not valid ' \
        'JSON' in markdown([row])


def test_a_malformed_suite_json_is_one_line(tmp_path, capsys):
    work = _work_dir(tmp_path / 'a', SHA_A, {'knn': _knn(SHA_A)})
    (tmp_path / 'a' / 'suite.json').write_text('{"config": ')
    code = report_cli.main([work, '--out', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert err.startswith(f'error: {work}/suite.json is malformed (not '
                          'valid JSON')
    # valid JSON that is no suite record: the same
    (tmp_path / 'a' / 'suite.json').write_text('[1, 2]')
    assert report_cli.main([work, '--out', str(tmp_path / 'out')]) == 2
    assert 'is malformed (a JSON list, not an object)' in \
        capsys.readouterr().err


def test_a_failed_result_without_a_reason_is_listed(tmp_path):
    work = _work_dir(tmp_path / 'a', SHA_A, {
        'knn': _knn(SHA_A), 'linear': dict(status='failed', name='linear')})
    out = tmp_path / 'out'
    write_report([work], str(out), formats=('md', ), with_published=False)
    text = (out / 'report.md').read_text()
    assert '- missing: tiny_classifier @ aaaaaaaa / linear (failed): no ' \
        'reason recorded' in text


def test_a_knn_result_without_k20_is_named(tmp_path):
    """A suite with ks=(1, 2): its k-NN fills no column; the report says
    so instead of dropping the k-NN table without a word."""
    work = _work_dir(tmp_path / 'a', SHA_A, {'knn': _knn(SHA_A, ks=(1, 2))})
    row = load_run(work)
    assert row.values == {}
    assert '- not shown: tiny_classifier @ aaaaaaaa / knn: it fills none ' \
        'of the columns of a knn result' in markdown([row])
    ((name, why), ) = row.not_shown
    assert name == 'knn'
    assert 'knn/k20_top1' in why and 'knn/k1_top1, knn/k2_top1' in why


def test_two_work_dirs_of_one_config_get_two_labels_and_one_dagger(
        tmp_path):
    """Two random-init work dirs of one config (one label from
    suite.json) and a third run: the cell measured another way is flagged
    on its own row only."""
    first = _work_dir(tmp_path / 'first', None,
                      {'knn': _knn(None, 40.0)})
    odd = _work_dir(tmp_path / 'odd', None,
                    {'knn': _knn(None, 60.0, protocol_id='p-other')})
    third = _work_dir(tmp_path / 'third', SHA_A, {'knn': _knn(SHA_A, 50.0)})
    rows = [load_run(d) for d in (first, odd, third)]
    text = markdown(rows)
    flagged = [s for s in _table_lines(text) if '†' in s]
    assert flagged and all('60.00†' in s for s in flagged)
    assert not any('40.00†' in s for s in _table_lines(text))
    assert rows[0].label == rows[1].label == 'tiny_classifier @ random init'
    # the written report names each row once
    out = tmp_path / 'out'
    write_report([first, odd, third], str(out), formats=('md', ),
                 with_published=False)
    text = (out / 'report.md').read_text()
    labels = [s.split(' | ')[0] for s in _table_lines(text)
              if '40.00' in s or '60.00' in s]
    assert len(labels) == 4 and len(set(labels)) == 2  # 2 tables x 2 rows
    note = next(s for s in text.splitlines() if s.startswith('† '))
    assert note.startswith(f'† tiny_classifier @ random init ({odd})')
