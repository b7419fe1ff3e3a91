"""Writing files so that a failure never leaves a half-written file or destroys an old one."""
import os
import tempfile


def atomic_write(path, write):
    """Call `write(f)` on a temporary file beside `path`, then rename it over `path`; the file keeps the
    permissions of the one it replaces (or the umask's), and on any error the temporary file is removed."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.exists(path):
        mode = os.stat(path).st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
