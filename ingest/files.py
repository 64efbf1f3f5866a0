"""The vault's files on disk: confined paths and atomic, owner-respecting replacement.

Everything that writes into a vault goes through here, so the rules (never outside the root,
never through a link, never a torn file, permissions kept) have one home.
"""

import os
import stat
import tempfile
from pathlib import PurePosixPath, PureWindowsPath

from ingest import notes


class UnsafePath(Exception):
    """The note's path would lead a write outside the vault or through a link."""


class FileChanged(Exception):
    """The file changed between reading it and replacing it."""


def safe_path(root: str, rel: str) -> str:
    """The absolute path of `rel` inside `root`; UnsafePath when it would lead elsewhere."""
    if not rel or "\x00" in rel:
        raise UnsafePath("empty or invalid path")
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or rel.startswith(("/", "\\")):
        raise UnsafePath(f"absolute path refused: {rel}")
    if ".." in posix.parts or ".." in windows.parts:
        raise UnsafePath(f"path leads out of the vault: {rel}")
    root_real = os.path.realpath(root)
    full = os.path.join(root_real, *posix.parts)
    if os.path.islink(full):
        raise UnsafePath("the note is a symbolic link; export never writes through links")
    real = os.path.realpath(full)
    if os.path.commonpath([root_real, real]) != root_real:
        raise UnsafePath("the note's folder leads out of the vault (symbolic link)")
    return real


def refuse_unsafe_file(path: str) -> None:
    """UnsafePath when replacing the file would undo something its owner set up."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath("not a regular file")
    if st.st_nlink > 1:
        raise UnsafePath("the file has other hard links; replacing it would separate them")
    # No write bit at all is the owner's "do not change" (root could write it anyway).
    if not os.access(path, os.W_OK) or not st.st_mode & 0o222:
        raise UnsafePath("the file is read-only; export does not override that")
    # The new bytes go to a temp file beside the note, renamed over it: the folder must take
    # both. Found here, while the note's links can still be held back from its partners.
    if not os.access(os.path.dirname(path) or ".", os.W_OK | os.X_OK):
        raise UnsafePath("the note's folder is read-only; export writes beside the note")


TEMP_NAME_BYTES = 64


def write_atomic(
    path: str, data: bytes, *, expect_hash: str | None = None, sync_folder: bool = True
) -> None:
    """Replace `path` with `data` all at once: temp file in the same folder, fsync, rename.

    The file's permission bits are kept. The temp file's name starts with a dot so an import
    running meanwhile never takes it for a note; it is removed if anything fails. It carries at
    most TEMP_NAME_BYTES of the note's name: a 250-byte name plus the temp file's own parts
    would pass the 255 bytes a file name may have.
    """
    folder, name = os.path.split(path)
    st = os.stat(path)
    stem = os.fsencode(name)[:TEMP_NAME_BYTES].decode("utf-8", "ignore")
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=".export-tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode))
        if hasattr(os, "chown") and (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
            try:  # keep the owner too, where this process may (root, or its own group)
                os.chown(tmp, st.st_uid, st.st_gid)
            except OSError:
                pass
        if expect_hash is not None and (
            notes.content_hash(notes.read_regular(path, limit=-1)) != expect_hash
        ):
            raise FileChanged()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_folder:
        fsync_folder(folder)


def fsync_folder(folder: str) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
