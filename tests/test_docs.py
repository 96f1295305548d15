"""The docs and metafiles: every config is listed in a metafile and every
metafile entry names a config that exists; the README tables are the
metafiles' numbers; the repository speaks only of the project."""
import glob
import os.path as osp
import re

import pytest
import yaml

from mmbcssl.cli import render_paper_tables
from mmbcssl.evaluation.paper_results import (COLUMNS, README_TABLES,
                                              load_entries, metafiles,
                                              render_readme)
from tests.conftest import REPO_ROOT, load_config

CONFIGS = sorted(
    osp.relpath(p, REPO_ROOT)
    for p in glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'),
                       recursive=True)
    # not model configs: transfer registries and suite lists
    if '/_base_/' not in p and '/transfer/' not in p and '/suites/' not in p)


def test_every_config_is_in_a_metafile_and_back():
    entries = load_entries()
    listed = [e.config for e in entries]
    assert len(listed) == len(set(listed)), 'a config listed twice'
    assert sorted(listed) == CONFIGS
    for e in entries:
        cfg = load_config(osp.join(REPO_ROOT, e.config))
        assert 'model' in cfg, e.config
        pre = e.metadata.get('Pre-training')
        if pre:
            assert osp.isfile(osp.join(REPO_ROOT, pre)), (e.config, pre)


def test_metafiles_are_openmmlab_model_index():
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    assert sorted(osp.relpath(p, REPO_ROOT) for p in metafiles()) == sorted(
        index['Import'])
    for path in metafiles():
        with open(path) as f:
            doc = yaml.safe_load(f)
        (collection, ) = doc['Collections']
        assert collection['Paper']['URL'].startswith('https://arxiv.org/')
        for model in doc['Models']:
            assert model['In Collection'] == collection['Name']
            assert model['Name'] == osp.splitext(osp.basename(
                model['Config']))[0] or model['Name'].startswith(
                    'supervised-check_')
            for result in model.get('Results', []):
                assert result['Protocol'] in COLUMNS
                assert result['Source']
                (value, ) = result['Metrics'].values()
                assert 0 < value < 100


def test_published_numbers_of_the_headline_row():
    rows = {e.config: e.results for e in load_entries()}
    knn = rows['configs/dino/bcssl-t_9x9_100e.py']['knn_top1']
    assert knn == (70.3, 'arXiv 2312.05695, Table 5')
    probe = rows['configs/linear/linear_bcssl-t-9x9_dino-100e-pre_8xb128-'
                 'coslr-100e_in1k.py']
    # the paper's C column is the authors' unnormalised mean error, and
    # its A/R columns are 1000-way: never filed under the official ones
    assert probe['c_mean_error_resize256'][0] == 59.39
    assert 'c_mce' not in probe and 'a_top1' not in probe
    assert probe['a_top1_1000way'][0] == 4.66
    # DINO's eval_linear.py reports the best epoch: so do the papers
    assert probe['linear_top1_best'] == (75.0, 'arXiv 2312.05695, Table 5')
    assert 'linear_top1' not in probe
    # BC-SSL-S 9x9 after 300 epochs (the paper's Section 4)
    small = rows['configs/linear/linear_bcssl-s-9x9_dino-300e-pre_8xb128-'
                 'coslr-100e_in1k.py']
    assert small['linear_top1_best'] == (79.0, 'arXiv 2312.05695, Section 4')


@pytest.mark.parametrize('folder', sorted(README_TABLES))
def test_readme_tables_are_rendered_from_the_metafiles(folder):
    path = osp.join(REPO_ROOT, 'configs', folder, 'README.md')
    text = open(path).read()
    assert render_readme(text, folder) == text, (
        f'{path} is out of date: python tools/misc/render_paper_tables.py')


def test_render_check_fails_on_a_stale_table(tmp_path, capsys):
    import shutil
    shutil.copytree(osp.join(REPO_ROOT, 'configs'), tmp_path / 'configs')
    shutil.copy(osp.join(REPO_ROOT, 'model-index.yml'), tmp_path)
    readme = tmp_path / 'configs' / 'dino' / 'README.md'
    readme.write_text(readme.read_text().replace('| 70.3 |', '| 71.3 |'))
    args = ['--root', str(tmp_path)]
    assert render_paper_tables.main(args + ['--check']) == 2
    assert 'configs/dino/README.md' in capsys.readouterr().err
    assert render_paper_tables.main(args) == 0
    assert '| 70.3 |' in readme.read_text()
    assert render_paper_tables.main(args + ['--check']) == 0


# Words about how the project is developed, and references to files outside
# the repository: neither belongs in it.
FORBIDDEN = re.compile(
    r'REFERENCE\.md|shared/|\b(this|a|our|the) session|\bsessions\b|'
    r'\blent\b|\bthe issue\b|\bthis task\b|closing note|(?-i:\bTODO\b)',
    re.IGNORECASE)
SCANNED = [
    p for pattern in ('**/*.md', 'configs/**/*.py', 'mmbcssl/**/*.py',
                      'tools/**/*.py', 'tools/**/*.sh', 'tests/**/*.py',
                      '*.yml', 'configs/**/*.yml')
    for p in glob.glob(osp.join(REPO_ROOT, pattern), recursive=True)
    if not re.match(r'(\.venv|data|work_dirs|build)/',
                    osp.relpath(p, REPO_ROOT))
    and not p.endswith('tests/test_docs.py')
]


def test_the_repository_speaks_only_of_the_project():
    found = []
    for path in SCANNED:
        with open(path, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                if FORBIDDEN.search(line):
                    found.append(f'{osp.relpath(path, REPO_ROOT)}:{n}: '
                                 f'{line.strip()}')
    assert not found, '\n'.join(found)


def test_the_scan_catches_a_process_word():
    assert FORBIDDEN.search('needs a session with a GPU')
    assert FORBIDDEN.search('see shared/REFERENCE.md section 3')
    assert not FORBIDDEN.search("@pytest.fixture(scope='session')")
    assert FORBIDDEN.search('# TODO: later')
    assert not FORBIDDEN.search('todo = [p for p in plan]')


def test_every_test_the_reliability_table_names_exists():
    """docs/reliability.md names the test behind each row: the file and
    the function (parametrised ids and `*` patterns allowed) exist."""
    import fnmatch
    checked = 0
    current = None  # `...::name` refers to the file named before it
    for line in open(osp.join(REPO_ROOT, 'docs', 'reliability.md')):
        for path, func in re.findall(
                r'`(tests/[\w/]+\.py|\.\.\.)(?:::([\w*]+))?', line):
            if path != '...':
                current = osp.join(REPO_ROOT, path)
                assert osp.isfile(current), path
            if func:
                names = re.findall(r'^def (test_\w+)', open(current).read(),
                                   re.M)
                assert fnmatch.filter(names, func), f'{current}::{func}'
                checked += 1
    assert checked > 25


# Every Markdown page a reader starts from: the README and docs/.
DOC_PAGES = sorted(
    [osp.join(REPO_ROOT, 'README.md')] +
    glob.glob(osp.join(REPO_ROOT, 'docs', '**', '*.md'), recursive=True))
LINK = re.compile(r'!?\[[^\]]*\]\(([^)\s]+)\)')


def _anchors(path: str) -> set:
    """The anchors GitHub gives the headings of a Markdown file."""
    text = re.sub(r'```.*?```', '', open(path, encoding='utf-8').read(),
                  flags=re.S)
    return {
        re.sub(r'[^\w\- ]', '', h.strip().lower()).replace(' ', '-')
        for h in re.findall(r'^#+ (.+)$', text, re.M)
    }


def broken_links(page: str) -> list:
    """The relative links of a Markdown page whose file (or heading) does
    not exist; links inside code blocks and to other sites are skipped."""
    text = re.sub(r'```.*?```', '', open(page, encoding='utf-8').read(),
                  flags=re.S)
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):  # https:, mailto:
            continue
        path, _, anchor = target.partition('#')
        dest = osp.normpath(osp.join(osp.dirname(page), path)) \
            if path else page
        if not osp.exists(dest):
            broken.append(target)
        elif anchor and dest.endswith('.md') and anchor not in _anchors(
                dest):
            broken.append(target)
    return broken


def test_every_relative_link_of_the_docs_resolves():
    assert len(DOC_PAGES) >= 10
    broken = {osp.relpath(p, REPO_ROOT): broken_links(p) for p in DOC_PAGES}
    assert not {k: v for k, v in broken.items() if v}, broken


def test_the_link_check_catches_a_missing_file_and_heading(tmp_path):
    (tmp_path / 'a.md').write_text('# Title\n\n## On a GPU machine\n')
    page = tmp_path / 'b.md'
    page.write_text('[ok](a.md#on-a-gpu-machine) [ok](a.md) '
                    '[web](https://example.org/x) ![gone](c.png) '
                    '[heading](a.md#on-a-cpu) [self](#nowhere)\n'
                    '```\n[code](ignored.md)\n```\n')
    assert broken_links(str(page)) == ['c.png', 'a.md#on-a-cpu',
                                       '#nowhere']


def test_the_readme_links_every_guide():
    """The README's "I want to..." table is the way into docs/: every
    guide is linked from it."""
    readme = open(osp.join(REPO_ROOT, 'README.md')).read()
    guides = sorted(
        osp.relpath(p, REPO_ROOT) for p in
        glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')) +
        glob.glob(osp.join(REPO_ROOT, 'docs', '*_guides', '*.md')))
    assert 'docs/advanced_guides/add_a_backbone.md' in guides
    assert [g for g in guides if f']({g}' not in readme] == []
