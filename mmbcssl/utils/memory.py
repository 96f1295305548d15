"""Peak memory of a piece of work, measured in a fresh process (CPU)."""
import json
import subprocess
import sys

_HWM = ('def _hwm():\n'
        '    for line in open("/proc/self/status"):\n'
        '        if line.startswith("VmHWM:"):\n'
        '            return int(line.split()[1])\n')


def subprocess_peak_mb(setup: str, work: str, what: str = 'the work') -> float:
    """Peak resident memory (MiB) of a fresh Python process while it runs
    ``work``, above its peak after ``setup`` (the imports, building what is
    not to be counted). Linux only.

    VmHWM (the resident high-water mark of this process image) rather than
    ``ru_maxrss``: on Linux the latter starts at the parent's peak. One
    process per measurement, because a high-water mark never goes down.
    """
    code = (f'{_HWM}{setup}\n_base = _hwm()\n{work}\n'
            'import json\nprint(json.dumps(dict(peak=_hwm(), base=_base)))\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True)
    if proc.returncode:
        raise RuntimeError(f'memory run of {what} failed:\n'
                           f'{proc.stderr[-2000:]}')
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    return (last['peak'] - last['base']) / 1024.  # VmHWM is in KiB
