"""Child side of the HumanEval sandbox: the text ``sandbox.run_sandboxed`` hands to ``python -I -S -B -c``.

loram never runs this in its own process (importing it only defines names): it runs in a fresh interpreter,
in the throw-away working directory that holds ``program.py``. Before the untrusted program starts it loads
what HumanEval needs, takes away the few primitives an audit event does not cover, and installs an audit hook,
which cannot be removed; then it runs the program and reports through the exit status (docs/tasks.md).
"""

import sys

PASSED, FAILED, BLOCKED = 0, 1, 3  # exit statuses; sandbox.py reads them
MARKER = "loram-sandbox: "  # starts the verdict line on stderr
WRITE_LIMIT = 32  # files opened for writing plus directories made: bounds disk use to about 32 x RLIMIT_FSIZE

# Imported before the hook, from the interpreter's cached bytecode: what HumanEval's prompts, solutions and
# tests import and a little more. Later imports compile from source: cached bytecode is refused (marshal).
PRELOAD = ("typing", "math", "cmath", "re", "collections", "collections.abc", "itertools", "functools", "operator",
           "heapq", "bisect", "string", "hashlib", "random", "fractions", "decimal", "numbers", "statistics", "copy",
           "datetime", "json", "array", "enum", "textwrap", "dataclasses", "struct")  # fmt: skip
# Functions without an audit event that reach outside the process; removed from their modules (and no
# module can be created afresh, see _seal). pidfd_send_signal could kill any process whose pid is known.
_SCHED = ("sched_setscheduler", "sched_setparam", "setpriority")  # of another process
STRIP = {"_signal": ("pidfd_send_signal",), "time": ("clock_settime", "clock_settime_ns"), "posix": _SCHED,
         "os": _SCHED}  # fmt: skip
BLOCKED_EVENTS = frozenset({
    "subprocess.Popen", "os.system", "pty.spawn", "_thread.start_new_thread", "sys.settrace", "sys.setprofile",
    "code.__new__", "marshal.load", "marshal.loads", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
    "resource.setrlimit", "resource.prlimit", "fcntl.ioctl", "fcntl.flock", "fcntl.lockf", "os.lockf",
    "os.putenv", "os.unsetenv", "cpython.PyInterpreterState_New", "os.chmod", "os.chown", "os.chflags",
    "os.lchflags", "os.link", "os.symlink", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
    "os.chdir",  # the working directory stays put: relative paths are checked against it
})  # fmt: skip
BLOCKED_PREFIXES = ("socket.", "ctypes.", "os.exec", "os.spawn", "os.fork", "os.posix_spawn", "_posixsubprocess",
                    "sqlite3.", "syslog.", "winreg.", "_winapi.", "msvcrt.")  # fmt: skip
# Modules that start processes, load native code, write files from C or run code without this hook.
BLOCKED_MODULES = frozenset({
    "_ctypes", "ctypes", "_ctypes_test", "_posixsubprocess", "_xxsubinterpreters", "_xxinterpchannels",
    "_interpreters", "_tkinter", "tkinter", "readline", "_posixshmem", "_multiprocessing", "_sqlite3", "_dbm",
    "_gdbm", "ossaudiodev", "syslog",
})  # fmt: skip
# Events that change the file system: (event, positions of paths, positions of dir_fd); only inside the cwd.
INSIDE_ONLY = (("os.mkdir", (0,), (2,)), ("os.remove", (0,), (1,)), ("os.rmdir", (0,), (1,)),
               ("os.rename", (0, 1), (2, 3)), ("os.truncate", (0,), ()), ("os.utime", (0,), (3,)))  # fmt: skip


class Blocked(BaseException):
    """Raised by the audit hook; a BaseException, so the program's ``except Exception`` does not swallow it."""


def _seal():
    """Load the modules, strip what ``STRIP`` names, and make builtin modules impossible to re-create."""
    import _imp
    import os

    for name in PRELOAD + sys.builtin_module_names:
        if name not in BLOCKED_MODULES and not name.startswith(("_test", "_xx", "xx")):
            try:
                __import__(name)
            except ImportError:
                pass
    for name, attrs in STRIP.items():
        for attr in attrs:
            sys.modules.get(name, sys).__dict__.pop(attr, None)  # (sys has none of these names)

    def create_builtin(spec):
        raise Blocked(f"blocked: creating builtin module {spec.name!r}")

    def start_new_thread(*args, **kwargs):  # no audit event on 3.11; one thread keeps the hook's checks whole
        raise Blocked("blocked: _thread.start_new_thread")

    # reload() does not restore these, and nothing else holds the originals
    _imp.create_builtin = create_builtin
    for module in filter(None, (sys.modules["_thread"], sys.modules.get("threading"))):
        for attr in {"start_new_thread", "start_new", "_start_new_thread"} & module.__dict__.keys():
            setattr(module, attr, start_new_thread)
    sys.dont_write_bytecode = True
    sys.pycache_prefix = "/dev/null/loram-no-bytecode"  # imports from now on compile from source
    os.umask(0o077)


def _install_guard(root, ext_dirs):
    """The audit hook. Everything it uses is bound here, in its closure: the program may rebind builtins and
    module globals, and may read (not write) these values through a traceback, but holds no reference to the
    hook itself. It therefore calls no Python-level function, and keeps no mutable state but a counter."""
    import itertools
    import os

    stat, fstat, getpid, normpath = os.stat, os.fstat, os.getpid, sys.modules["posix"]._path_normpath  # all C
    type_, str_, bytes_, int_, next_, oserror = type, str, bytes, int, next, OSError
    decode, blocked = bytes.decode, Blocked
    events, prefixes, modules, rules = BLOCKED_EVENTS, BLOCKED_PREFIXES, BLOCKED_MODULES, INSIDE_ONLY
    rule_names = frozenset(rule[0] for rule in rules)
    writes, write_limit = itertools.count(), WRITE_LIMIT
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    devices = frozenset(os.makedev(1, minor) for minor in (3, 5, 7, 8, 9))  # null zero full random urandom
    cwd_only, relative_to = (root,), root + "/"

    def hook(event, args):
        if event in events or event.startswith(prefixes):
            raise blocked("blocked: " + event)
        if event == "open":
            path, flags = args[0], args[2]
            kind = type_(path)
            if kind is not str_ and kind is not bytes_ and kind is not int_:
                raise blocked("blocked: open (a path that is not a str)")
            try:
                st = fstat(path) if kind is int_ else stat(path)
                mode, device = st.st_mode & 0o170000, st.st_rdev
            except oserror:
                mode = device = None
            if mode == 0o040000:  # a directory descriptor would let dir_fd= reach outside
                raise blocked("blocked: open (a directory)")
            if mode == 0o020000 or mode == 0o060000:
                if device in devices:
                    return
                raise blocked("blocked: open (a device)")
            if kind is int_ or (type_(flags) is int_ and not flags & write_flags):
                return
            if next_(writes) >= write_limit:
                raise blocked("blocked: open (too many files written)")
            paths, allowed = (path,), cwd_only
        elif event in rule_names:
            for name, path_at, fd_at in rules:
                if name == event:
                    break
            for i in fd_at:
                if args[i] is not None and args[i] != -1:
                    raise blocked("blocked: " + event + " (dir_fd)")
            if event == "os.mkdir" and next_(writes) >= write_limit:
                raise blocked("blocked: os.mkdir (too many files written)")
            paths, allowed = [args[i] for i in path_at], cwd_only
        elif event == "import":
            name = args[0]
            if type_(name) is not str_:
                raise blocked("blocked: import (a name that is not a str)")
            last, first = name.rpartition(".")[2], name.partition(".")[0]
            if last in modules or first in modules or last.startswith(("_test", "_xx")):
                raise blocked("blocked: import " + name)
            if args[1] is None:  # (never ==: a str subclass could answer anything)
                return
            paths, allowed = (args[1],), ext_dirs  # an extension module: only the interpreter's own
        elif (event == "os.kill" or event == "os.killpg") and args[0] != 0 and args[0] != getpid():
            raise blocked("blocked: " + event + " (another process)")  # own pid == own group id (own session)
        else:
            return
        for path in paths:
            if type_(path) is bytes_:
                path = decode(path, "utf-8", "surrogateescape")
            elif type_(path) is not str_:
                raise blocked("blocked: " + event + " (a path that is not a str)")
            path = normpath(path if path.startswith("/") else relative_to + path)  # lexical: no symlink can be made
            for top in allowed:
                if path == top or path.startswith(top + "/"):
                    break
            else:
                raise blocked(f"blocked: {event} (outside the working directory: {path})")

    sys.addaudithook(hook)


def main():
    import os

    write, exit_, err = os.write, os._exit, sys.stderr
    blocked, base_str, type_, isinstance_, str_ = Blocked, BaseException.__str__, type, isinstance, str
    with open(sys.argv[1], encoding="utf-8") as f:
        source = f.read()
    root = os.getcwd()  # the kernel's path: no symbolic links in it
    ext_dirs = tuple(os.path.normpath(p) for p in sys.path if p.endswith("lib-dynload"))
    _seal()
    _install_guard(root, ext_dirs)
    status, verdict = PASSED, "passed"
    try:
        exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the program must run to its end
        status, verdict, cause = FAILED, "failed: " + type_(exc).__name__, exc
        for _ in range(32):  # the refused event may sit under an exception the program raised from it
            if cause is None or isinstance_(cause, blocked):
                break
            cause = cause.__cause__ or cause.__context__
        if cause is not None and isinstance_(cause, blocked):
            status, verdict = BLOCKED, base_str(cause)
        else:
            try:
                verdict += ": " + str_(exc)[:300]
            except BaseException:  # noqa: BLE001
                pass
    try:
        err.flush()  # what the program printed comes before the verdict
        write(2, ("\n" + MARKER + verdict.replace("\n", " ") + "\n").encode("utf-8", "replace"))
    finally:
        exit_(status)  # no atexit handlers, no finalizers of the program


if __name__ == "__main__":
    main()
