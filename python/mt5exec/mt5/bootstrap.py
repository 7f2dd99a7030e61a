"""A real MT5 terminal for one instance: its files, its startup ini and its process.

This module owns three steps the MT5 worker runs before it attaches the MetaTrader5 package:

1. ``prepare_terminal`` copies what a terminal needs from a base installation into
   ``<instance_dir>/terminal/`` (run with ``/portable``, so every file the terminal writes stays
   there: one directory per account, nothing shared between instances).
2. ``write_startup_ini`` writes the ``/config:`` file with the account and the Expert Advisor
   to start (``[Common]``, ``[Experts]``, ``[StartUp]``).
3. ``launch_terminal`` starts ``terminal64.exe /portable /config:<ini>`` natively or through
   Wine and returns a ``TerminalProcess`` that removes the password from the ini once the
   terminal has read it.

The password is in exactly one place outside the worker's memory: the ini, between
``write_startup_ini`` and the scrub (``scrub_after`` seconds, ``TerminalProcess.scrub()``, the
terminal's exit, or the next ``prepare_terminal``/``write_startup_ini`` after a crash). It is
never on a command line (``/proc/*/cmdline`` is world-readable), in the environment
(``/proc/*/environ`` outlives ``exec`` in child processes) or in a log line. The scrub rewrites
the file; it does not wipe disk blocks, so the instance directory belongs on an encrypted or
otherwise private volume in production.

Startup ini encoding: UTF-16 LE with a BOM and CRLF line ends. That is what MT5 itself writes
for every ini it owns (``terminal.ini``, ``common.ini``, saved ``.set`` presets, tester
configs), so it is the one encoding every build reads without guessing. The terminal also
accepts single-byte files, but it reads those in the Windows ANSI code page of the machine (or
of the Wine prefix), which turns a non-ASCII character in a password, a server name or a path
into a different string on another host; UTF-8 without a BOM is read the same way, and UTF-8
with a BOM is reported to work only in recent builds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shlex
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mt5exec.files import atomic_write

log = logging.getLogger("mt5exec.mt5.bootstrap")

TERMINAL_EXE = "terminal64.exe"
TERMINAL_SUBDIR = "terminal"
STARTUP_INI = "mt5exec-start.ini"
MARKER = ".mt5exec-base.json"
MARKER_VERSION = 1

_INI_BOM = b"\xff\xfe"
_INI_ENCODING = "utf-16-le"
_TMP_INFIX = ".mt5exec-tmp"

# What a terminal needs from the base install, matched case-insensitively as Windows does.
# "program" files follow the base: a differing copy (size/mtime) is replaced. "seed" files are
# the starting point of the instance's own settings: the terminal rewrites them (servers.dat,
# common.ini), so a copy is replaced only when the base's file changed since it was copied.
_MQL5_PROGRAM_DIRS = ("include", "libraries", "experts", "indicators", "scripts", "presets")
_SKELETON_DIRS = (
    "MQL5/Include",
    "MQL5/Libraries",
    "MQL5/Experts",
    "MQL5/Experts/mt5exec",
    "MQL5/Indicators",
    "MQL5/Scripts",
)
# accounts.dat holds the saved logins of whoever used the base install: copying it would hand
# those to every instance, and MT5 ignores the ini's Password for an account saved there.
_EXCLUDED_FILES = frozenset({"config/accounts.dat"})
# Per-instance deployments (mt5exec.mt5.experts) live here; the base must not overwrite them.
_EXCLUDED_TREES = frozenset({"mql5/experts/mt5exec"})

# The timeframes MT5 accepts in [StartUp] Period.
_PERIODS = frozenset(
    {"M1", "M2", "M3", "M4", "M5", "M6", "M10", "M12", "M15", "M20", "M30"}
    | {"H1", "H2", "H3", "H4", "H6", "H8", "H12", "D1", "W1", "MN1"}
)
_PASSWORD_LINE = re.compile(r"^\s*password\s*=", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PATH_PART = re.compile(r"[A-Za-z0-9_.\- ]{1,64}")

# One lock for every read-modify-write of a startup ini in this process: a scrub running in a
# TerminalProcess thread must not replace an ini that write_startup_ini has just written.
_INI_LOCK = threading.Lock()


class BootstrapError(RuntimeError):
    """The base install, the instance directory or the terminal cannot be used as asked."""


# ----------------------------------------------------------------------------- prepare_terminal


@dataclass(frozen=True)
class _Source:
    path: Path
    kind: str  # "program" | "seed"
    size: int
    mtime_ns: int


def prepare_terminal(base_install: Path, instance_dir: Path) -> Path:
    """Copy what a terminal needs from ``base_install`` into ``<instance_dir>/terminal/``.

    Copied: ``terminal64.exe`` (required), top-level ``*.dll``, ``Config/`` (without
    ``accounts.dat``) and ``MQL5/{Include,Libraries,Experts,Indicators,Scripts,Presets}``.
    Never copied: ``Bases/`` (history caches), ``logs/``, ``Tester/``, ``Sounds/``,
    ``MQL5/Files``, ``MQL5/Logs`` and anything else. Files are copied, never linked, so two
    instances share nothing. Symlinks inside the base are followed; one that points outside
    the base install is refused.

    Idempotent: a re-run replaces program files whose size or mtime differ from the base,
    re-seeds ``Config/`` files only when the base's file changed, removes program files the
    base no longer has, and leaves everything the terminal wrote alone. A marker
    (``.mt5exec-base.json``) records the source path and a fingerprint of the copied files, so a
    changed or moved base is detected. Also scrubs a password a crash may have left in the
    startup ini. The caller serialises calls for one instance.
    """
    if not base_install.is_dir():
        raise BootstrapError(f"base MT5 install {base_install} is not a directory")
    base = base_install.resolve(strict=True)
    terminal = instance_dir / TERMINAL_SUBDIR
    terminal_abs = terminal.absolute()
    if terminal_abs.resolve().is_relative_to(base) or base.is_relative_to(terminal_abs.resolve()):
        raise BootstrapError(f"instance directory {terminal} overlaps the base install {base}")
    sources = _select(base)  # before creating anything: a bad base leaves no half instance
    fingerprint = _fingerprint(sources)
    terminal.mkdir(parents=True, exist_ok=True)
    # The directory holds the startup ini (with the password until scrubbed) and the
    # terminal's saved account data: the service account only.
    os.chmod(terminal, 0o700)
    scrub_startup_ini(terminal)

    marker = _read_marker(terminal)
    recorded: dict[str, list[Any]] = marker.get("files", {}) if marker is not None else {}
    same_source = marker is not None and marker.get("source") == str(base)
    base_changed = not same_source or marker is None or marker.get("fingerprint") != fingerprint

    copied = 0
    for rel, src in sources.items():
        dest = terminal / rel
        if src.kind == "program":
            needed = not _same_file(dest, src)
        else:
            needed = (
                not dest.exists()
                or not same_source
                or recorded.get(rel) != [src.size, src.mtime_ns, src.kind]
            )
        if needed:
            _copy_file(src.path, dest)
            copied += 1
    removed = 0
    for rel, (_size, _mtime, kind) in recorded.items():
        if rel not in sources and kind == "program":
            with contextlib.suppress(FileNotFoundError):
                (terminal / rel).unlink()
                removed += 1
    for skeleton in _SKELETON_DIRS:
        (terminal / skeleton).mkdir(parents=True, exist_ok=True)

    if base_changed or copied or removed:
        files = {rel: [s.size, s.mtime_ns, s.kind] for rel, s in sources.items()}
        content = {
            "version": MARKER_VERSION,
            "source": str(base),
            "fingerprint": fingerprint,
            "files": files,
        }
        atomic_write(terminal / MARKER, json.dumps(content, indent=1).encode(), mode=0o600)
    log.info(
        "terminal %s prepared from %s: %d copied, %d removed, base %s",
        terminal,
        base,
        copied,
        removed,
        "changed" if base_changed else "unchanged",
    )
    return terminal


def _select(base: Path) -> dict[str, _Source]:
    """Relative path (as in the base, ``/``-separated) -> source, for everything to copy."""
    selected: dict[str, _Source] = {}
    exe: Path | None = None
    for entry in sorted(base.iterdir()):
        name = entry.name.lower()
        if name == TERMINAL_EXE:
            _check_link(base, entry)
            if entry.is_file():
                exe = entry
                _add(selected, PurePosixPath(entry.name), entry, "program")
        elif name.endswith(".dll"):
            _check_link(base, entry)
            if entry.is_file():
                _add(selected, PurePosixPath(entry.name), entry, "program")
        elif name == "config" and entry.is_dir():
            for rel, path in _walk(base, entry, PurePosixPath(entry.name)):
                _add(selected, rel, path, "seed")
        elif name == "mql5" and entry.is_dir():
            _check_link(base, entry)
            for sub in sorted(entry.iterdir()):
                if sub.name.lower() in _MQL5_PROGRAM_DIRS and sub.is_dir():
                    rel_sub = PurePosixPath(entry.name, sub.name)
                    for rel, path in _walk(base, sub, rel_sub):
                        _add(selected, rel, path, "program")
    if exe is None:
        raise BootstrapError(
            f"{base / TERMINAL_EXE} not found: base_install must be an MT5 installation folder"
        )
    return selected


def _add(selected: dict[str, _Source], rel: PurePosixPath, path: Path, kind: str) -> None:
    key = rel.as_posix().lower()
    if key in _EXCLUDED_FILES or any(
        key == tree or key.startswith(tree + "/") for tree in _EXCLUDED_TREES
    ):
        return
    st = path.stat()
    selected[rel.as_posix()] = _Source(path, kind, st.st_size, st.st_mtime_ns)


def _check_link(base: Path, path: Path) -> None:
    if not path.is_symlink():
        return
    target = path.resolve()
    if not target.is_relative_to(base):
        raise BootstrapError(f"symlink {path} points outside the base install ({target})")
    if not target.exists():
        raise BootstrapError(f"symlink {path} is dangling ({target})")


def _walk(base: Path, directory: Path, rel: PurePosixPath) -> Iterator[tuple[PurePosixPath, Path]]:
    """Regular files under ``directory``, following symlinks that stay inside ``base``."""
    _check_link(base, directory)
    seen: set[Path] = set()
    stack = [(directory, rel)]
    while stack:
        current, current_rel = stack.pop()
        real = current.resolve()
        if real in seen:  # a link back to an ancestor: copy each real directory once
            continue
        seen.add(real)
        for entry in sorted(current.iterdir()):
            _check_link(base, entry)
            entry_rel = current_rel / entry.name
            if entry.is_dir():
                stack.append((entry, entry_rel))
            elif entry.is_file():
                yield entry_rel, entry


def _fingerprint(sources: Mapping[str, _Source]) -> str:
    # Paths, sizes and mtimes of what is copied: as good at spotting a change as the per-file
    # copy decision itself, and cheap on every start (hashing a ~100 MB terminal64.exe is not).
    digest = hashlib.sha256()
    for rel in sorted(sources):
        s = sources[rel]
        digest.update(f"{rel}\0{s.size}\0{s.mtime_ns}\0{s.kind}\n".encode())
    return digest.hexdigest()


def _read_marker(terminal: Path) -> dict[str, Any] | None:
    """The marker of the last copy, or None when absent or not one we wrote (copy again)."""
    try:
        content = json.loads((terminal / MARKER).read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("version") != MARKER_VERSION:
        return None
    files = content.get("files")
    if not isinstance(files, dict):
        return None
    for rel, entry in files.items():
        # Paths from the marker are deleted when the base drops them: only plain relative
        # paths inside the terminal directory, whatever ended up in the file.
        parts = PurePosixPath(rel).parts
        if not parts or parts[0] == "/" or ".." in parts or "\\" in rel or ":" in rel:
            return None
        if not (isinstance(entry, list) and len(entry) == 3):
            return None
    return content


def _same_file(dest: Path, src: _Source) -> bool:
    try:
        st = dest.stat(follow_symlinks=False)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) == (src.size, src.mtime_ns)


def _copy_file(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}{_TMP_INFIX}")
    try:
        shutil.copy2(src, tmp)  # content, mode (the executable bit) and mtime; never a link
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# ---------------------------------------------------------------------------- write_startup_ini


@dataclass(frozen=True)
class ExpertStartup:
    """The Expert Advisor the terminal attaches to a chart at start (``[StartUp]``).

    ``expert`` is relative to ``MQL5\\Experts`` without extension (``mt5exec\\MyEA``; ``/`` is
    accepted too); ``parameters`` names a ``.set`` file in ``MQL5\\Presets``.
    """

    expert: str
    symbol: str
    period: str = "H1"
    parameters: str | None = None


def write_startup_ini(
    terminal_dir: Path,
    *,
    login: int,
    server: str,
    password: str | None,
    expert: ExpertStartup | None = None,
) -> Path:
    """Write ``<terminal_dir>/mt5exec-start.ini`` (UTF-16 LE + BOM, mode 0600, atomically).

    Leftovers of an earlier write that crashed (temporary files with a password) are removed.
    Values that could break the ini (line breaks, control characters, blanks at either end)
    are refused with ``ValueError``; the message never contains the password.
    """
    if not terminal_dir.is_dir():
        raise BootstrapError(f"terminal directory {terminal_dir} does not exist")
    if isinstance(login, bool) or not isinstance(login, int) or login <= 0:
        raise ValueError(f"login must be a positive account number, got {login!r}")
    _check_value("server", server)
    common = [f"Login={login}", f"Server={server}"]
    if password is not None:
        if password == "" or _CONTROL.search(password) or password != password.strip():
            raise ValueError(
                "password must be non-empty, without control characters or blanks at either end"
            )
        common.append(f"Password={password}")
    common += ["ProxyEnable=0", "CertInstall=0", "NewsEnable=0"]
    sections = {
        "Common": common,
        # Account=0/Profile=0: keep experts enabled when the account or profile changes.
        "Experts": [
            "AllowLiveTrading=1",
            "AllowDllImport=0",
            "Enabled=1",
            "Account=0",
            "Profile=0",
        ],
    }
    if expert is not None:
        startup = [f"Expert={_mql5_path('expert', expert.expert)}"]
        if expert.parameters is not None:
            startup.append(f"ExpertParameters={_mql5_path('parameters', expert.parameters)}")
        _check_value("symbol", expert.symbol)
        if expert.period not in _PERIODS:
            raise ValueError(f"period must be one of {' '.join(sorted(_PERIODS))}")
        startup += [f"Symbol={expert.symbol}", f"Period={expert.period}"]
        sections["StartUp"] = startup
    text = "\r\n".join(
        f"[{name}]\r\n" + "".join(line + "\r\n" for line in lines)
        for name, lines in sections.items()
    )
    ini = terminal_dir / STARTUP_INI
    with _INI_LOCK:
        _remove_ini_leftovers(terminal_dir)
        atomic_write(ini, _INI_BOM + text.encode(_INI_ENCODING), mode=0o600)
    log.info("startup ini %s written (login %d, server %s)", ini, login, server)
    return ini


def _check_value(name: str, value: str) -> None:
    if not value or _CONTROL.search(value) or value != value.strip():
        raise ValueError(
            f"{name} must be non-empty, without control characters or blanks at either end"
        )


def _mql5_path(name: str, value: str) -> str:
    parts = value.replace("/", "\\").split("\\")
    if not all(_PATH_PART.fullmatch(p) and p not in (".", "..") for p in parts):
        raise ValueError(
            f"{name} must be a relative path of names made of letters, digits, '_', '.', '-' "
            f"and spaces, got {value!r}"
        )
    return "\\".join(parts)


def scrub_startup_ini(terminal_dir: Path) -> bool:
    """Remove the password from a startup ini left behind (e.g. by a crash); True if removed.

    Also deletes temporary files of an interrupted ``write_startup_ini``.
    """
    with _INI_LOCK:
        removed = _remove_ini_leftovers(terminal_dir)
        return _strip_password(terminal_dir / STARTUP_INI) or removed


def _remove_ini_leftovers(terminal_dir: Path) -> bool:
    removed = False
    for leftover in terminal_dir.glob(f".{STARTUP_INI}.*"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed = True
    return removed


def _decode_ini(data: bytes) -> tuple[str, str, bytes]:
    """Text, codec and BOM of an ini: MT5's own UTF-16, else bytes as Latin-1 (lossless)."""
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="surrogatepass"), codec, bom
    return data.decode("latin-1"), "latin-1", b""


def _strip_password(ini: Path, identity: tuple[int, int] | None = None) -> bool:
    """Rewrite ``ini`` without its Password line(s). Call with ``_INI_LOCK`` held.

    With ``identity`` (st_dev, st_ino), only that very file is scrubbed: a newer ini written
    for a later launch replaced it under a new inode and belongs to that launch.
    """
    try:
        st = ini.stat()
        data = ini.read_bytes()
    except FileNotFoundError:
        return False
    if identity is not None and (st.st_dev, st.st_ino) != identity:
        return False
    text, codec, bom = _decode_ini(data)
    lines = text.splitlines(keepends=True)
    kept = [line for line in lines if not _PASSWORD_LINE.match(line)]
    if len(kept) == len(lines):
        return False
    atomic_write(ini, bom + "".join(kept).encode(codec, errors="surrogatepass"), mode=0o600)
    log.info("password removed from %s", ini)
    return True


def _ini_password(ini: Path) -> str | None:
    text, _, _ = _decode_ini(ini.read_bytes())
    for line in text.splitlines():
        if _PASSWORD_LINE.match(line):
            return line.split("=", 1)[1].strip()
    return None


# ------------------------------------------------------------------------------ launch_terminal


def wine_path(path: Path) -> str:
    """The Windows path Wine gives a Unix path through its ``Z:`` drive (``/`` mapped)."""
    return "Z:" + str(PurePosixPath(path.absolute())).replace("/", "\\")


class TerminalProcess:
    """A launched terminal: wait for it, stop it, and scrub the password from its ini.

    A watcher thread scrubs the ini ``scrub_after`` seconds after the launch or when the
    process exits, whichever comes first; ``scrub()`` does it at once (call it when the login
    is known to have succeeded). Scrubbing happens once per launch.
    """

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        ini: Path,
        identity: tuple[int, int],
        argv: Sequence[str],
        scrub_after: float,
    ) -> None:
        self._popen = popen
        self.ini = ini
        self.argv = tuple(argv)
        self._identity = identity  # (st_dev, st_ino) of the ini this launch read
        self._scrub_lock = threading.Lock()
        self._scrubbed = False
        self._scrub_after = scrub_after
        self._watcher = threading.Thread(
            target=self._watch, name=f"mt5-terminal-{popen.pid}", daemon=True
        )
        self._watcher.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the terminal still runs after ``timeout`` seconds."""
        try:
            code = self._popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.scrub()
        return code

    def terminate(self, grace: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("terminal %d ignored SIGTERM for %.1fs: killing it", self.pid, grace)
                self._popen.kill()
                self._popen.wait()
        self.scrub()
        return self._popen.returncode

    def scrub(self) -> bool:
        """Remove the password from this launch's ini now; True if it was still there.

        The ini is scrubbed when this returns, whichever thread got to it first: a second
        caller (``terminate`` while the watcher scrubs after the exit) waits for the first."""
        with self._scrub_lock:
            if self._scrubbed:
                return False
            with _INI_LOCK:
                removed = _strip_password(self.ini, self._identity)
            self._scrubbed = True
            return removed

    def _watch(self) -> None:
        try:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(self._scrub_after)
            self.scrub()
        except Exception:  # a thread has no caller to raise to: report it, never the password
            log.exception("scrubbing the startup ini %s failed", self.ini)


def launch_terminal(
    terminal_dir: Path,
    ini: Path,
    *,
    wine: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    scrub_after: float = 10.0,
    output: Path | None = None,
) -> TerminalProcess:
    """Start ``terminal64.exe /portable /config:<ini>`` in ``terminal_dir``.

    With ``wine`` (e.g. ``["wine"]`` or ``["env", "WINEPREFIX=/srv/wine", "wine"]``) the
    command is ``[*wine, <terminal64.exe>, /portable, /config:Z:\\...]``; without it the file
    runs directly (Windows, or an executable stand-in on Linux). The child stays in the
    caller's process group, so the supervisor that kills the worker's group kills it too.
    ``output`` receives the terminal's (or Wine's) stdout and stderr; None discards them.
    The password must not be in ``env`` (checked) and is never put on the command line.
    """
    exe = (terminal_dir / TERMINAL_EXE).absolute()
    if not exe.is_file():
        raise BootstrapError(f"{exe} not found: run prepare_terminal first")
    ini = ini.absolute()
    if not ini.is_file():
        raise BootstrapError(f"startup ini {ini} not found")
    if wine is not None:
        if not wine:
            raise ValueError("wine must name a command, e.g. ['wine']")
        argv = [*wine, str(exe), "/portable", f"/config:{wine_path(ini)}"]
    elif os.name == "nt" or os.access(exe, os.X_OK):
        argv = [str(exe), "/portable", f"/config:{ini}"]
    else:
        raise BootstrapError(f"{exe} is not executable here: pass wine=['wine'] to run it")
    child_env = dict(env) if env is not None else dict(os.environ)
    _refuse_leaks(_ini_password(ini), argv, child_env)
    st = ini.stat()

    log.info("launching MT5 terminal: %s", shlex.join(argv))
    with contextlib.ExitStack() as stack:
        sink: IO[bytes] | int = subprocess.DEVNULL
        if output is not None:
            sink = stack.enter_context(open(output, "ab"))
        popen = subprocess.Popen(
            argv,
            cwd=terminal_dir,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=sink,
            close_fds=True,
        )
    log.info("MT5 terminal started, pid %d", popen.pid)
    return TerminalProcess(popen, ini, (st.st_dev, st.st_ino), argv, scrub_after)


def _refuse_leaks(password: str | None, argv: Sequence[str], env: Mapping[str, str]) -> None:
    """A tripwire: the password on a command line or in an environment is readable by others."""
    if not password:
        return

    def leaks(value: str) -> bool:
        # Substring only for passwords long enough not to match a path by chance.
        return value == password or (len(password) >= 6 and password in value)

    if any(leaks(a) for a in argv) or any(leaks(v) for v in env.values()):
        raise BootstrapError(
            "the account password appears in the command line or the environment of the "
            "terminal; pass it only through write_startup_ini"
        )
