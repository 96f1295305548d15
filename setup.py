"""Install with ``pip install -e .`` after ``tools/setup_env.py`` (or the
README commands) has put torch and the compiled mmcv in place."""
import os.path as osp

from setuptools import find_packages, setup


def read_requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


def read_version():
    namespace = {}
    with open(osp.join('mmbcssl', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmbcssl',
    version=read_version(),
    description='Benchmark suite: do self-supervised backbones (BC-SSL, '
    'Swin, EsViT, ConvNeXt, ResNet, ViT) transfer?',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    # The OpenMMLab packages and mmcv (built from source with ops) are
    # installed by tools/setup_env.py, as OpenMMLab's own `mim` would; pip
    # must not try to resolve mmcv, which has no wheels on PyPI.
    install_requires=read_requirements('runtime.txt'),
    extras_require={
        'mim': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt'),
        'optional': read_requirements('optional.txt'),
    },
    zip_safe=False)
