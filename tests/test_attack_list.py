"""The attack list (docs/reliability.md, run by tests/attacks.py)."""
import pytest

from tests.attacks import Row, judge, main, parse_rows, resolve_all


def test_every_row_of_the_reliability_doc_names_tests_that_exist():
    rows = parse_rows()
    resolve_all(rows)
    assert len(rows) >= 55
    bad = [(r.fault, r.unresolved) for r in rows
           if r.unresolved or not r.node_ids]
    assert not bad


def _doc(tmp_path, test_cell):
    doc = tmp_path / 'reliability.md'
    doc.write_text('## Faults\n\n| fault | sees | test |\n|---|---|---|\n'
                   '| a NaN | one line | '
                   '`tests/test_attack_list.py::test_every_row_of_the_'
                   'reliability_doc_names_tests_that_exist` |\n'
                   f'| a kill | nothing lost | {test_cell} |\n')
    return str(doc)


@pytest.mark.parametrize('cell', [
    '`tests/test_attack_list.py::test_that_was_never_written`',
    '`...::test_that_was_never_written`',
    '`tests/no_such_file.py`',
    'its own tests',
])
def test_a_row_without_an_existing_test_fails_the_check(tmp_path, capsys,
                                                        cell):
    assert main(['--doc', _doc(tmp_path, cell), '--check']) == 1
    out = capsys.readouterr().out
    assert 'Faults: a kill: NO TEST' in out
    assert '1 of 2 rows name existing tests' in out


def test_same_and_file_relative_references_resolve(tmp_path):
    rows = parse_rows(_doc(tmp_path, 'same, `...::test_same_and_file_*`'))
    resolve_all(rows)
    assert rows[1].node_ids == rows[0].node_ids + [
        'tests/test_attack_list.py::'
        'test_same_and_file_relative_references_resolve']


def test_a_failing_or_missing_case_is_named_in_the_table():
    held = Row('S', 'held fault', [], node_ids=['tests/a.py::test_x'])
    broken = Row('S', 'broken fault', [], node_ids=['tests/a.py::test_y',
                                                    'tests/b.py'])
    lost = Row('S', 'lost fault', [], node_ids=['tests/c.py::test_z'])
    judge([held, broken, lost], {
        'tests/a.py::test_x': ('passed', ''),
        'tests/a.py::test_y[1]': ('passed', ''),
        'tests/a.py::test_y[2]': ('failure', 'assert 1 == 2\nmore'),
        'tests/b.py::test_w': ('passed', '')})
    assert held.outcome == 'held (1 test cases)'
    assert broken.outcome == ('FAILURE 1 of 3: tests/a.py::test_y[2] '
                              '(assert 1 == 2)')
    assert lost.outcome == 'NOT RUN'


@pytest.mark.slow
def test_the_whole_attack_list_holds(capsys):
    """Every fault of docs/reliability.md, injected by its tests (minutes:
    the tests that train and kill real processes)."""
    code = main([])
    out = capsys.readouterr().out
    assert code == 0, out
