# RayClient embedded server: Python worker process (standard library only).
#
# The C# server starts one of these per concurrently running task (or per actor) and talks to
# it over the process's stdin/stdout with length-prefixed binary frames. User code never writes
# to the protocol: fd 1 is re-pointed to a pipe whose lines travel as KIND_STDOUT frames, and
# stderr stays the process's stderr, so the server keeps the two apart as Ray's log stream does
# (stdout lines with level -1, stderr lines with -2).
#
# Frame (both directions): u32 little-endian length of the rest | u8 kind | u64 seq | blobs
# where blobs are u32-length-prefixed byte strings. See WorkerProtocol.cs for the C# side.
#
# Values cross as pickles: task arguments arrive exactly as the Ray client pickled them
# ((args, kwargs) with ray.util.client.client_pickler.PickleStub persistent ids), results leave
# as protocol-5 pickles whose ObjectRefs/actor handles are PickleStub persistent ids again, the
# convention of Ray's server pickler (ray: python/ray/util/client/server/server_pickler.py).
import collections
import concurrent.futures
import importlib
import io
import itertools
import os
import pickle
import select
import struct
import sys
import threading
import traceback
import types

import ray_shared  # written next to this script by the server

KIND_READY = 0
KIND_EXEC = 1
KIND_CREATE_ACTOR = 2
KIND_CALL_METHOD = 3
KIND_SHUTDOWN = 9
KIND_CALLBACK_RESULT = 30
KIND_RESULT = 1
KIND_SUBMIT_METHOD = 20
KIND_GET = 21
KIND_SUBMIT_TASK = 22
KIND_STDOUT = 40

STATUS_OK = 0
STATUS_TASK_ERROR = 1

_HEADER = struct.Struct("<IBQ")
_U32 = struct.Struct("<I")


def _install_ray_stubs():
    """Registers the few `ray` names that pickles from a Ray client refer to.

    The worker has no real Ray; these classes only need the module paths and shapes Ray uses,
    so that pickles we write are the ones a Ray server writes and vice versa."""
    ray = types.ModuleType("ray")
    util = types.ModuleType("ray.util")
    client = types.ModuleType("ray.util.client")
    client_pickler = types.ModuleType("ray.util.client.client_pickler")
    exceptions = types.ModuleType("ray.exceptions")

    client_pickler.PickleStub = ray_shared.PickleStub
    for cls in ray_shared.EXCEPTIONS:
        setattr(exceptions, cls.__name__, cls)
    ObjectRef = ray.ObjectRef = ray_shared.ObjectRef

    class ActorMethod:
        def __init__(self, actor_id, name, num_returns=1):
            self._actor_id = actor_id
            self._name = name
            self._num_returns = num_returns

        def options(self, num_returns=1, **_ignored):
            return ActorMethod(self._actor_id, self._name, num_returns)

        def remote(self, *args, **kwargs):
            return _WORKER.submit_method(self._actor_id, self._name, args, kwargs, self._num_returns)

    class ActorHandle:
        def __init__(self, actor_id):
            self._actor_id = bytes(actor_id)

        def __getattr__(self, name):
            if name.startswith("_"):
                raise AttributeError(name)
            return ActorMethod(self._actor_id, name)

        def __repr__(self):
            return "Actor(%s)" % self._actor_id.hex()

    ActorHandle.__module__ = "ray.actor"
    ray.actor = types.SimpleNamespace(ActorHandle=ActorHandle)
    ray.ActorHandle = ActorHandle

    class RemoteFunction:
        """What `@ray.remote` makes of a function: `.remote()` submits it as a child task of the
        running task (so ray.cancel(recursive=True) reaches it); the client may also name the
        decorated function by module and name, and the worker then runs the plain function."""

        def __init__(self, function, options):
            self._function = function
            self._options = dict(options)
            self.__wrapped__ = function
            self.__name__ = getattr(function, "__name__", "remote_function")
            self.__qualname__ = getattr(function, "__qualname__", self.__name__)
            self.__module__ = getattr(function, "__module__", None)
            self.__doc__ = getattr(function, "__doc__", None)

        def options(self, **options):
            merged = dict(self._options)
            merged.update(options)
            return RemoteFunction(self._function, merged)

        def remote(self, *args, **kwargs):
            return _WORKER.submit_task(self, args, kwargs)

        def __call__(self, *args, **kwargs):
            raise TypeError("Remote functions cannot be called directly. Instead of running "
                            "'%s()', try '%s.remote()'." % (self.__name__, self.__name__))

        def __reduce__(self):
            # By module and name, as cloudpickle sends importable functions; the worker that
            # loads it finds this same RemoteFunction and unwraps it.
            return (_import_remote, (self.__module__, self.__qualname__))

    RemoteFunction.__module__ = "ray.remote_function"
    remote_function = types.ModuleType("ray.remote_function")
    remote_function.RemoteFunction = RemoteFunction

    def _import_remote(module, qualname):
        target = importlib.import_module(module)
        for part in qualname.split("."):
            target = getattr(target, part)
        return target

    _import_remote.__module__ = "ray.remote_function"
    _import_remote.__qualname__ = "_import_remote"
    remote_function._import_remote = _import_remote

    class _ActorClassStub:
        def __init__(self, cls):
            self._cls = cls
            self.__wrapped__ = cls

        def remote(self, *args, **kwargs):
            raise NotImplementedError(
                "The RayClient embedded server does not create actors from inside tasks; "
                "create the actor from the client and pass its handle in.")

        def options(self, **_options):
            return self

    remote_function.ActorClassStub = _ActorClassStub

    def remote(*args, **options):
        if len(args) == 1 and not options and callable(args[0]):
            target = args[0]
            return _ActorClassStub(target) if isinstance(target, type) else RemoteFunction(target, {})
        if args:
            raise TypeError("ray.remote takes a function or class, or keyword options only.")
        return lambda target: (_ActorClassStub(target) if isinstance(target, type)
                               else RemoteFunction(target, options))

    def cancel(ref, *, force=False, recursive=True):
        raise NotImplementedError(
            "ray.cancel from inside a task is not supported by the RayClient embedded server; "
            "cancel from the client.")

    def get(refs, timeout=None):
        if isinstance(refs, (list, tuple)):
            return [get(r) for r in refs]
        if type(refs) is not ObjectRef:
            raise TypeError("ray.get takes an ObjectRef or a list of them, not %r" % (refs,))
        return _WORKER.get(refs)

    # Functions and classes a job driver defines in its script arrive by value (ray_shared.py).
    byvalue = ray_shared.install_byvalue(types.ModuleType("ray._byvalue"))
    ray._byvalue = byvalue

    ray.get = get
    ray.remote = remote
    ray.cancel = cancel
    ray.remote_function = remote_function
    ray.util = util
    ray.exceptions = exceptions
    util.client = client
    client.client_pickler = client_pickler
    for name, module in (("ray", ray), ("ray.util", util), ("ray.util.client", client),
                         ("ray.util.client.client_pickler", client_pickler),
                         ("ray.exceptions", exceptions),
                         ("ray.remote_function", remote_function),
                         ("ray._byvalue", byvalue)):
        sys.modules.setdefault(name, module)
    return sys.modules["ray"]


_WORKER = None  # the Worker of this process, for ray.get and actor calls made by user code
ray = _install_ray_stubs()
PickleStub = sys.modules["ray.util.client.client_pickler"].PickleStub
RayTaskError = sys.modules["ray.exceptions"].RayTaskError
TaskCancelledError = sys.modules["ray.exceptions"].TaskCancelledError


class _ArgUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "Object":
            return ray.ObjectRef(pid[2])
        if isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "Actor":
            return ray.ActorHandle(pid[2])
        raise pickle.UnpicklingError("unsupported persistent id %r" % (pid,))


class _ResultPickler(pickle.Pickler):
    def __init__(self, file, client_id, contained):
        super().__init__(file, protocol=5)
        self._client_id = client_id
        self._contained = contained

    def persistent_id(self, obj):
        if type(obj) is ray.ObjectRef:
            self._contained.append(b"O" + obj.binary())
            return PickleStub("Object", self._client_id, obj.binary(), None, None)
        if type(obj) is ray.ActorHandle:
            self._contained.append(b"A" + obj._actor_id)
            return PickleStub("Actor", self._client_id, obj._actor_id, None, None)
        return None


def _loads(data):
    return _ArgUnpickler(io.BytesIO(data)).load()


def _dumps(value, client_id, contained):
    buf = io.BytesIO()
    _ResultPickler(buf, client_id, contained).dump(value)
    return buf.getvalue()


class Worker:
    def __init__(self, rfd, wfd):
        self._in = open(rfd, "rb", buffering=1 << 20)
        self._out = open(wfd, "wb", buffering=1 << 20)
        self._functions = {}
        self._read_lock = threading.Lock()
        self._queued = collections.deque()  # task frames read by a thread waiting for a callback
        self._responses = {}
        self._response_ready = threading.Condition()
        self._callback_seq = itertools.count(1 << 62)
        self._tls = threading.local()
        self._write_lock = threading.Lock()
        self._actor = None
        self._actor_pool = None
        self._proctitle = "ray::RayClientWorker"
        self._ip = "127.0.0.1"
        self._pid = os.getpid()
        self._stdout = None  # the fd 1 forwarder, set by main()

    # --- framing -------------------------------------------------------------------------
    def _read_exact(self, n):
        data = self._in.read(n)
        if data is None or len(data) != n:
            return None
        return data

    def _read_frame(self):
        head = self._read_exact(_HEADER.size)
        if head is None:
            return None
        length, kind, seq = _HEADER.unpack(head)
        body = self._read_exact(length - 9)
        if body is None:
            return None
        blobs = []
        view = memoryview(body)
        pos = 0
        end = len(body)
        while pos < end:
            (n,) = _U32.unpack_from(view, pos)
            pos += 4
            blobs.append(view[pos:pos + n])
            pos += n
        return kind, seq, blobs

    def _write_frame(self, kind, seq, status, blobs):
        if kind == KIND_RESULT and self._stdout is not None:
            self._stdout.drain()  # what the task printed goes out before its result
        total = 9 + 1 + sum(4 + len(b) for b in blobs)
        with self._write_lock:  # actor methods may finish on several threads (max_concurrency)
            out = self._out
            out.write(_HEADER.pack(total, kind, seq))
            out.write(bytes((status,)))
            for b in blobs:
                out.write(_U32.pack(len(b)))
                out.write(b)
            out.flush()

    # --- calls from user code back into the server ----------------------------------------
    def _next_frame(self):
        """The next task frame for the main loop; callback results go to their waiters."""
        while True:
            if self._queued:
                return self._queued.popleft()
            with self._read_lock:
                if self._queued:
                    continue
                frame = self._read_frame()
            if frame is None or frame[0] != KIND_CALLBACK_RESULT:
                return frame
            self._deliver(frame)

    def _deliver(self, frame):
        with self._response_ready:
            self._responses[frame[1]] = frame[2]
            self._response_ready.notify_all()

    def _callback(self, kind, blobs):
        seq = next(self._callback_seq)
        self._write_frame(kind, seq, STATUS_OK, blobs)
        while True:
            with self._response_ready:
                if seq in self._responses:
                    return self._responses.pop(seq)
            if self._read_lock.acquire(blocking=False):
                try:
                    frame = self._read_frame()
                finally:
                    self._read_lock.release()
                if frame is None:
                    raise RuntimeError("The server closed the worker's pipe.")
                if frame[0] == KIND_CALLBACK_RESULT:
                    self._deliver(frame)
                else:
                    self._queued.append(frame)
            else:
                with self._response_ready:
                    if seq not in self._responses:
                        self._response_ready.wait(0.05)

    def _submit(self, kind, head, args, kwargs, tail, num_returns):
        """Sends a submission whose blobs are head + pickled (args, kwargs) + tail; returns the
        refs the server made for its results (or raises the error it answered with)."""
        contained = []
        payload = _dumps((list(args), dict(kwargs)), getattr(self._tls, "client_id", ""), contained)
        blobs = self._callback(kind, head + [payload] + tail)
        status = bytes(blobs[0])[0]
        if status != STATUS_OK:
            raise pickle.loads(bytes(blobs[1]))
        ids = bytes(blobs[1])
        refs = [ray.ObjectRef(ids[i:i + 28]) for i in range(0, len(ids), 28)]
        return refs[0] if num_returns == 1 else refs

    def submit_method(self, actor_id, method, args, kwargs, num_returns):
        return self._submit(KIND_SUBMIT_METHOD, [actor_id, method.encode()], args, kwargs,
                            [str(num_returns).encode()], num_returns)

    def submit_task(self, remote_function, args, kwargs):
        """A task submitting a task: the server runs it as a child of the running task, for the
        same job, with the options given to @ray.remote / .options()."""
        options = remote_function._options
        key = ("%s.%s" % (remote_function.__module__, remote_function.__qualname__)).encode()
        function = pickle.dumps(remote_function, protocol=5)
        return self._submit(KIND_SUBMIT_TASK, [key, function], args, kwargs,
                            [pickle.dumps(options, protocol=5)], int(options.get("num_returns", 1)))

    def get(self, ref):
        blobs = self._callback(KIND_GET, [ref.binary()])
        status = bytes(blobs[0])[0]
        value = _loads(bytes(blobs[1]))
        if status != STATUS_OK or isinstance(value, BaseException):
            raise value
        return value

    # --- execution -----------------------------------------------------------------------
    def _function(self, key, pickled):
        fn = self._functions.get(key)
        if fn is None:
            fn = _loads(pickled)
            if isinstance(fn, ray.remote_function.RemoteFunction):
                fn = fn._function  # a @ray.remote function named by module and name
            if not callable(fn):
                raise TypeError("%r is not callable: a remote function must be a Python "
                                "function" % (fn,))
            self._functions[key] = fn
        return fn

    def _error(self, name, exc):
        # Leave out the worker's own frame, as Ray leaves out its executor frames.
        frames = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        tb = "".join(traceback.format_exception(type(exc), exc, frames or exc.__traceback__))
        text = "%s (pid=%d, ip=%s)\n%s" % (self._proctitle, self._pid, self._ip, tb)
        try:
            pickle.dumps(exc, protocol=5)
            cause = exc
        except Exception:  # an exception we cannot pickle travels as its text
            cause = RuntimeError("%s: %s" % (type(exc).__qualname__, exc))
        err = RayTaskError(name, text, cause, self._proctitle, self._pid, self._ip)
        try:
            return pickle.dumps(err, protocol=5)
        except Exception:  # never let error reporting kill the worker
            plain = RayTaskError(name, text, RuntimeError(str(exc)), self._proctitle, self._pid, self._ip)
            return pickle.dumps(plain, protocol=5)

    def _exec(self, seq, blobs, kind=KIND_EXEC):
        # blobs: func_key (method name for actors), func_pickle, name, client_id, args,
        # num_returns, then (ref_id, value)*
        name = bytes(blobs[2]).decode()
        client_id = bytes(blobs[3]).decode()
        self._tls.client_id = client_id
        num_returns = int(bytes(blobs[5]))
        try:
            if kind == KIND_CALL_METHOD:
                if self._actor is None:
                    raise RuntimeError("The actor was not created in this worker.")
                fn = getattr(self._actor, bytes(blobs[0]).decode())
            elif kind == KIND_CREATE_ACTOR:
                fn = _loads(blobs[1])
                if isinstance(fn, ray.remote_function.ActorClassStub):
                    fn = fn._cls  # a @ray.remote class named by module and name
                if not isinstance(fn, type):
                    raise TypeError("%r is not a class: an actor must be a Python class" % (fn,))
            else:
                fn = self._function(bytes(blobs[0]), blobs[1])
            args, kwargs = _loads(blobs[4])
            if len(blobs) > 6:
                deps = {}
                for i in range(6, len(blobs), 2):
                    deps[bytes(blobs[i])] = _loads(blobs[i + 1])
                args = [deps.get(a.binary(), a) if type(a) is ray.ObjectRef else a
                        for a in args]
                kwargs = {k: (deps.get(v.binary(), v) if type(v) is ray.ObjectRef else v)
                          for k, v in kwargs.items()}
            result = fn(*args, **kwargs)
            if kind == KIND_CREATE_ACTOR:
                self._actor = result
                concurrency = int(bytes(blobs[0]) or b"1")
                if concurrency > 1:
                    self._actor_pool = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency)
                result = None
            if num_returns == 1:
                values = (result,)
            else:
                values = tuple(result)
                if len(values) != num_returns:
                    raise ValueError("Task returned %d objects, but num_returns=%d."
                                     % (len(values), num_returns))
            contained = []
            out = [_dumps(v, client_id, contained) for v in values]
            out.append(b"".join(contained))
            self._write_frame(KIND_RESULT, seq, STATUS_OK, out)
        except KeyboardInterrupt:
            # ray.cancel(force=False) interrupts the running task (SIGINT), not the worker.
            err = TaskCancelledError("Task %s was cancelled." % name)
            self._write_frame(KIND_RESULT, seq, STATUS_TASK_ERROR, [pickle.dumps(err, protocol=5)])
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: B902 - every failure is reported to the caller
            self._write_frame(KIND_RESULT, seq, STATUS_TASK_ERROR, [self._error(name, exc)])

    def run(self):
        version = "%d.%d.%d" % sys.version_info[:3]
        self._write_frame(KIND_READY, 0, STATUS_OK, [version.encode(), str(self._pid).encode()])
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            kind, seq, blobs = frame
            if kind == KIND_CALL_METHOD and self._actor_pool is not None:
                blobs = [bytes(b) for b in blobs]  # the frame buffer is reused by the next read
                self._actor_pool.submit(self._exec, seq, blobs, kind)
            elif kind in (KIND_EXEC, KIND_CREATE_ACTOR, KIND_CALL_METHOD):
                self._exec(seq, blobs, kind)
            elif kind == KIND_SHUTDOWN:
                return


class _StdoutForwarder:
    """Sends what reaches fd 1 (prints, C extensions, child processes) to the server, line by line.

    drain() runs before a task's result is sent, so what the task printed reaches the server (and
    the client's log, or a job's log) before the result: a driver that exits on the result would
    otherwise lose its tasks' last lines.
    """

    def __init__(self, worker, rfd):
        self._worker = worker
        self._rfd = rfd
        os.set_blocking(rfd, False)
        self._lock = threading.Lock()  # held while bytes read from the pipe are being framed
        self._pending = b""
        self._closed = False

    def run(self):
        try:
            while not self._closed:
                select.select([self._rfd], [], [])
                with self._lock:
                    self._pump(final=False)
        except (OSError, ValueError):
            pass  # the server is gone or the worker is shutting down

    def drain(self):
        try:
            sys.stdout.flush()
            with self._lock:
                self._pump(final=True)
        except (OSError, ValueError):
            pass

    def _pump(self, final):
        lines = []
        while True:
            try:
                chunk = os.read(self._rfd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                self._closed = True
                final = True
                break
            self._pending += chunk
            parts = self._pending.split(b"\n")
            self._pending = parts.pop()
            lines.extend(parts)
            if len(self._pending) >= 65536:  # a very long line without an end: send what there is
                lines.append(self._pending)
                self._pending = b""
        if final and self._pending:
            lines.append(self._pending)
            self._pending = b""
        if lines:
            self._worker._write_frame(KIND_STDOUT, 0, STATUS_OK, lines)


def main():
    # Keep the protocol on private copies of fds 0/1; user output on fd 1 goes through a pipe.
    rfd = os.dup(0)
    wfd = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    out_r, out_w = os.pipe()
    os.dup2(out_w, 1)
    os.close(out_w)
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    work_dir = os.environ.get("RAYCLIENT_WORKING_DIR")
    if work_dir:
        os.chdir(work_dir)
    for path in reversed([p for p in os.environ.get("RAYCLIENT_SYS_PATH", "").split(os.pathsep) if p]):
        sys.path.insert(0, path)
    global _WORKER
    _WORKER = Worker(rfd, wfd)
    _WORKER._stdout = _StdoutForwarder(_WORKER, out_r)
    threading.Thread(target=_WORKER._stdout.run, name="stdout", daemon=True).start()
    _WORKER.run()


if __name__ == "__main__":
    main()
